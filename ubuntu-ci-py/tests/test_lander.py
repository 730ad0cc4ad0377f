"""Lander: a ticket's request run from Python, its progress iterated, its outcome read;
for real (sbuild, the image builder, autopkgtest) on the example package."""

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import ubuntu_ci
from conftest import REPO, example_package
from ubuntu_ci import DataStore, Lander, TicketSystem, aio


def submitted(tickets: TicketSystem, files: List[Path], title: str, **store: Any) -> str:
    """A ticket with `files` stored and recorded as its SPU artifacts (the seed's flow)."""
    ticket = tickets.create_ticket(title, owner="dev@example.com")
    spu = tickets.create_source_package_upload("hello-ci", "1.0-1")
    subticket = tickets.create_subticket(spu, ticket, "dev@example.com")
    store = DataStore(f"ticket.{tickets.ticket(ticket).id}", "sources", public=True, **store)
    for path in files:
        with open(path, "rb") as f:
            url = store.put_file(path.name, f)
        tickets.create_artifact(path.name, url, "SPU", subticket=subticket)
    return ticket


def test_a_request_that_cannot_build_fails_at_its_build(embedded: Path, tmp_path: Path) -> None:
    changes = example_package(tmp_path / "packages")
    tickets = TicketSystem()
    # The .changes without the files it lists.
    ticket = submitted(tickets, [changes], "incomplete")
    request = Lander().submit(ticket)
    with pytest.raises(TimeoutError):
        request.outcome(timeout=0)  # just begun
    messages: List[Dict[str, Any]] = list(request)
    phases = [m.get("phase") for m in messages if "phase" in m]
    assert phases[:2] == ["PPA_ASSIGNMENT", "PPA_ASSIGNMENT"], messages
    assert "SOURCE_BUILD" in phases
    final = messages[-1]
    assert final["state"] == "FAILED", final
    assert "is not among the URLs" in final["reason"], final
    outcome = request.outcome()
    assert outcome["state"] == "FAILED"
    assert outcome["step"] == "SOURCE_BUILD"
    assert request.outcome() == outcome  # kept
    assert list(request) == []  # the iteration ended with the final message
    detail = tickets.ticket(ticket)
    assert detail.closed and detail.status == "FAILED"


def test_a_servers_lander_runs_a_ticket_handed_to_it(server_with_lander, tmp_path: Path) -> None:
    changes = example_package(tmp_path / "packages")
    tickets = TicketSystem(server_with_lander.url, token=server_with_lander.token)
    access = {"backend": server_with_lander.url, "token": server_with_lander.token}
    # The .changes without the files it lists: the server's lander fails it at its build.
    ticket = submitted(tickets, [changes], "incomplete, on a server", **access)
    lander = Lander(url=server_with_lander.url, token=server_with_lander.token)
    request = lander.submit(ticket)
    messages = list(request)
    steps = [(m.get("phase"), m.get("status")) for m in messages if "phase" in m]
    assert ("PPA_ASSIGNMENT", "IN_PROGRESS") in steps, messages
    assert ("SOURCE_BUILD", "FAILED") in steps, messages
    final = messages[-1]
    assert final["state"] == "FAILED" and "is not among the URLs" in final["reason"], final
    outcome = request.outcome()
    assert (outcome["state"], outcome["step"]) == ("FAILED", "SOURCE_BUILD")
    with pytest.raises(ubuntu_ci.UnsupportedError):
        lander.execute({"ticket_id": 1, "source_packages": [], "progress_queue": "q"})
    with pytest.raises(ubuntu_ci.UnauthorizedError):
        Lander(url=server_with_lander.url, token="wrong").submit(ticket)


def test_bad_requests_are_refused_before_anything_runs(embedded: Path) -> None:
    tickets = TicketSystem()
    empty = tickets.create_ticket("no uploads", owner="dev@example.com")
    lander = Lander()
    with pytest.raises(ubuntu_ci.InvalidInputError, match="no uploads"):
        lander.submit(empty)
    with pytest.raises(ubuntu_ci.NotFoundError):
        lander.submit(404)
    with pytest.raises(ubuntu_ci.InvalidInputError, match="execute_request"):
        lander.execute({"ticket_id": "1", "progress_queue": "q"})
    with pytest.raises(ubuntu_ci.InvalidInputError):
        lander.submit(empty, series="no such series!")
    assert tickets.ticket(empty).current_workflow_step == "NEW"


@pytest.fixture()
def chroots(embedded: Path, tmp_path: Path) -> Path:
    """The build chroot the Rust build tests cache (made here if they did not run)."""
    cache = REPO / "target" / "test-chroots"
    config = tmp_path / "config" / "ubuntu-ci"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(f'[build]\nchroot_dir = "{cache}"\n')
    return cache


def test_a_request_runs_through_every_step_for_real(chroots: Path, tmp_path: Path) -> None:
    changes = example_package(tmp_path / "packages")
    tickets = TicketSystem()
    # First through the example script, as its docs say.
    run = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python" / "run_request.py"), str(changes)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for shown in [
        "==> SOURCE_BUILD: building hello-ci 1.0-1 (1/1)",
        "==> test 2/2",
        "COMPLETED at COMPLETE",
    ]:
        assert shown in run.stdout, run.stdout
    assert tickets.ticket(1).status == "SUCCEEDED"

    ticket = ubuntu_ci.submit("hello-ci from Python", [changes], owner="dev@example.com")
    assert sorted(a.name for a in ticket.artifacts if a.type == "SPU") == sorted(
        p.name for p in changes.parent.iterdir()
    )
    request = Lander().submit(ticket.id)
    messages = list(request)
    phases = {m["phase"] for m in messages if "phase" in m}
    for step in ["PPA_ASSIGNMENT", "SOURCE_BUILD", "IMAGE_BUILD", "IMAGE_TEST", "PUBLISH"]:
        assert step in phases, (step, phases)
    assert any("current" in m and "total" in m for m in messages), "the test runner's count"
    assert messages[-1]["state"] == "COMPLETED", messages[-1]
    outcome = request.outcome()
    assert outcome["state"] == "COMPLETED", outcome
    assert [t["test_result"] for t in outcome["tests"]] == ["PASSED"]
    assert outcome["published"] == ["hello-ci 1.0-1"]
    detail = tickets.ticket(ticket.id)
    assert detail.closed
    assert (detail.current_workflow_step, detail.status) == ("COMPLETE", "SUCCEEDED")
    kinds = {a.type for a in detail.artifacts}
    assert {"SPU", "BUILD_LOG", "IMAGE", "TEST_RESULT"} <= kinds, kinds

    # A second request, cancelled while it builds: CANCELLED, its ticket too.
    again = ubuntu_ci.submit("cancelled from Python", [changes], owner="dev@example.com").id
    request = Lander().submit(again)
    for message in request:
        if message.get("phase") == "SOURCE_BUILD" and "building" in message.get("message", ""):
            request.cancel()
    outcome = request.outcome()
    assert outcome["state"] == "CANCELLED", outcome
    assert tickets.ticket(again).status == "CANCELLED"


def test_an_abandoned_async_wait_leaves_the_request_usable(embedded: Path, tmp_path: Path) -> None:
    changes = example_package(tmp_path / "packages")
    ticket = submitted(TicketSystem(), [changes], "incomplete, from aio")

    async def main() -> None:
        lander = await aio.Lander.open()
        request = await lander.submit(ticket)
        # Given up at once: its worker thread lets go of the request within a poll.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(request.outcome(), 0.001)
        messages = [message async for message in request]
        assert messages[-1]["state"] == "FAILED", messages[-1]
        assert (await request.outcome())["step"] == "SOURCE_BUILD"

    asyncio.run(main())
