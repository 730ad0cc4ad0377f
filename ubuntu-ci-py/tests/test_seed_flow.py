"""The seed's flow from Python: ticket, upload, subticket, files into the data store,
artifacts; on the embedded services and on a server."""

from pathlib import Path

import ubuntu_ci
from ubuntu_ci import DataStore, TicketSystem


def seed_flow(tickets: TicketSystem, store_args: dict, work: Path) -> None:
    changes = work / "autopilot_1.5~dev.1_source.changes"
    changes.write_bytes(b"Format: 1.8\nSource: autopilot\nVersion: 1.5~dev.1\n")

    ticket = tickets.create_ticket(
        "Ticket name", owner="user@example.com", description="Ticket description", bug_id="123"
    )
    assert ticket.endswith("/api/v1/ticket/1/"), ticket
    spu = tickets.create_source_package_upload("autopilot", "1.5~dev.1")
    assert spu.endswith("/api/v1/spu/1/"), spu
    subticket = tickets.create_subticket(spu, ticket, "user@example.com")
    assert subticket.endswith("/api/v1/subticket/1/"), subticket

    # The seed's snippet, as written (with `with` for its `while`).
    data_store = DataStore("ticket.1", "sources", public=True, **store_args)
    with open(changes, "rb") as f:
        url = data_store.put_file("autopilot_1.5~dev.1_source.changes", f.read())
    assert url.endswith("/ticket.1.sources/autopilot_1.5~dev.1_source.changes"), url

    artifact = tickets.create_artifact(
        "autopilot_1.5~dev.1_source.changes", url, "SPU", subticket=subticket
    )
    assert artifact.endswith("/api/v1/artifact/1/"), artifact

    assert data_store.get_file("autopilot_1.5~dev.1_source.changes") == changes.read_bytes()
    listed = data_store.list_files()
    assert [f["name"] for f in listed] == ["autopilot_1.5~dev.1_source.changes"]
    assert listed[0]["size"] == changes.stat().st_size

    detail = tickets.ticket(ticket)
    assert detail.title == "Ticket name"
    assert detail.owner == "user@example.com"
    assert detail.bug_id == "https://bugs.launchpad.net/bugs/123"
    assert not detail.closed
    assert [s.resource_uri for s in detail.subtickets] == ["/api/v1/subticket/1/"]
    assert [(a.name, a.type, a.reference) for a in detail.artifacts] == [
        ("autopilot_1.5~dev.1_source.changes", "SPU", url)
    ]
    # The same, by id and as the REST API's JSON.
    assert tickets.get_ticket(1)["title"] == "Ticket name"

    download = work / "downloaded.changes"
    data_store.download("autopilot_1.5~dev.1_source.changes", download)
    assert download.read_bytes() == changes.read_bytes()
    data_store.delete_file("autopilot_1.5~dev.1_source.changes")
    assert data_store.list_files() == []


def test_the_seed_flow_runs_on_the_embedded_services(embedded: Path, tmp_path: Path) -> None:
    seed_flow(TicketSystem(), {}, tmp_path)
    # Kept in the data dir: a second handle sees the ticket.
    assert TicketSystem().ticket(1).title == "Ticket name"
    assert (embedded / "tickets.db").exists()


def test_the_seed_flow_runs_against_a_server(server, tmp_path: Path) -> None:
    tickets = TicketSystem(server.url, token=server.token)
    seed_flow(tickets, {"backend": server.url, "token": server.token}, tmp_path)


def test_the_version_is_the_crates() -> None:
    assert ubuntu_ci.__version__.count(".") == 2
