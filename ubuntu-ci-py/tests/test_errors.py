"""Errors: one class per kind, the built-in kinds they also are, and bad input refused
without changing anything."""

from pathlib import Path

import pytest
import ubuntu_ci
from conftest import example_package
from ubuntu_ci import DataStore, TicketSystem, errors


def test_each_kind_has_its_class_and_the_builtin_it_also_is(embedded: Path) -> None:
    store = DataStore("ticket.1", "sources")
    with pytest.raises(FileNotFoundError) as missing:
        store.get_file("absent.dsc")
    assert isinstance(missing.value, ubuntu_ci.NotFoundError)
    assert missing.value.kind == "not_found"
    assert missing.value.resource == "ticket.1.sources/absent.dsc"
    assert "absent.dsc" in str(missing.value)

    with pytest.raises(ValueError) as bad:
        store.put_file("../escape", b"x")
    assert isinstance(bad.value, ubuntu_ci.InvalidInputError)
    assert not bad.value.retryable

    assert issubclass(errors.UnavailableError, ConnectionError)
    assert errors.UnavailableError("x").retryable
    for cls in (
        errors.ConflictError,
        errors.TooLargeError,
        errors.InternalError,
        errors.UnauthorizedError,
        errors.UnsupportedError,
    ):
        assert issubclass(cls, ubuntu_ci.Error)


@pytest.mark.parametrize("name", ["../x", "a/b", "/abs", "", ".", ".."])
def test_hostile_object_names_are_refused_and_nothing_is_stored(embedded: Path, name: str) -> None:
    store = DataStore("ticket.1", "sources")
    with pytest.raises(ubuntu_ci.InvalidInputError):
        store.put_file(name, b"x")
    assert store.list_files() == []


def test_bad_container_names_and_backends_are_refused(embedded: Path) -> None:
    with pytest.raises(ubuntu_ci.InvalidInputError):
        DataStore("../ticket", "sources")
    with pytest.raises(ubuntu_ci.InvalidInputError):
        DataStore("ticket.1", "sources", backend="gopher://example.com/")
    with pytest.raises(ubuntu_ci.InvalidInputError):
        TicketSystem("mysql://example.com/db")


def test_put_file_takes_bytes_or_binary_files_only(embedded: Path, tmp_path: Path) -> None:
    store = DataStore("ticket.1", "sources")
    with pytest.raises(TypeError):
        store.put_file("a.dsc", "text, not bytes")  # type: ignore[arg-type]
    text = tmp_path / "t.txt"
    text.write_text("abc")
    with open(text) as f, pytest.raises(TypeError):
        store.put_file("t.txt", f)  # type: ignore[arg-type]
    with open(text) as f, pytest.raises(TypeError):
        # Streamed: its read() gives text.
        store.put_file("t.txt", _NoFileno(f))
    assert store.list_files() == []


class _NoFileno:
    """A file object without a descriptor: read() only."""

    def __init__(self, inner):
        self.inner = inner

    def read(self, n: int = -1):
        return self.inner.read(n)


def test_bad_references_and_missing_owners_are_refused(embedded: Path) -> None:
    tickets = TicketSystem()
    with pytest.raises(ubuntu_ci.InvalidInputError, match="owner"):
        tickets.create_ticket("no owner")
    ticket = tickets.create_ticket("t", owner="dev@example.com")
    with pytest.raises(ubuntu_ci.InvalidInputError):
        tickets.create_subticket("/api/v1/ticket/1/", ticket, "dev@example.com")
    with pytest.raises(ubuntu_ci.NotFoundError):
        tickets.ticket(99)
    for bad in (0, -1, "/api/v1/ticket/0/"):
        with pytest.raises(ubuntu_ci.InvalidInputError):
            tickets.ticket(bad)
    with pytest.raises(TypeError):
        tickets.ticket(True)
    with pytest.raises(ubuntu_ci.InvalidInputError):
        tickets.create_artifact("x", "file:///x", "NOT_A_TYPE", ticket=ticket)
    # Nothing half-made: the ticket has no subticket and no artifact.
    detail = tickets.ticket(ticket)
    assert detail.subtickets == () and detail.artifacts == ()


def test_a_server_refuses_a_wrong_token(server) -> None:
    tickets = TicketSystem(server.url, token="not-the-token")
    with pytest.raises(ubuntu_ci.UnauthorizedError):
        tickets.create_ticket("t", owner="dev@example.com")
    with pytest.raises(PermissionError):
        DataStore("ticket.1", "sources", backend=server.url, token="not-the-token")


def test_a_bad_upload_is_refused_and_no_ticket_is_made(embedded: Path, tmp_path: Path) -> None:
    changes = example_package(tmp_path / "packages")
    packages = changes.parent
    [dsc] = packages.glob("*.dsc")
    dsc.write_bytes(dsc.read_bytes() + b"\n")  # its checksums in the .changes no longer hold
    with pytest.raises(ubuntu_ci.InvalidInputError, match="dsc"):
        ubuntu_ci.submit("bad upload", [changes], owner="dev@example.com")
    with pytest.raises(ubuntu_ci.NotFoundError):
        TicketSystem().ticket(1)
    store = embedded / "store"
    containers = (
        [p.name for p in store.iterdir() if not p.name.startswith(".")] if store.exists() else []
    )
    assert containers == [], "nothing stored"
