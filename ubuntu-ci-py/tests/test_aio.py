"""ubuntu_ci.aio: the same calls as coroutines, the event loop free meanwhile."""

import asyncio
from pathlib import Path

from ubuntu_ci import aio


def test_the_seed_flow_as_coroutines(embedded: Path) -> None:
    async def main() -> None:
        tickets = await aio.TicketSystem.open()
        ticket = await tickets.create_ticket("async", owner="dev@example.com")
        store = await aio.DataStore.open("ticket.1", "sources", public=True)
        urls = await asyncio.gather(
            *(store.put_file(f"file-{n}.dsc", b"x" * n) for n in range(1, 21))
        )
        assert len(set(urls)) == 20
        spu = await tickets.create_source_package_upload("hello", "2.10-3")
        subticket = await tickets.create_subticket(spu, ticket, "dev@example.com")
        await tickets.create_artifact("file-1.dsc", urls[0], "SPU", subticket=subticket)
        detail = await tickets.ticket(ticket)
        assert [a.name for a in detail.artifacts] == ["file-1.dsc"]
        assert len(await store.list_files()) == 20
        assert await store.get_file("file-3.dsc") == b"xxx"

    asyncio.run(main())
