"""The calls of :mod:`ubuntu_ci` as coroutines.

Each call runs in a worker thread (``asyncio.to_thread``); the native call releases the
GIL, so the event loop and other threads go on meanwhile::

    from ubuntu_ci import aio

    async def main() -> None:
        store = await aio.DataStore.open("ticket.1", "sources", public=True)
        url = await store.put_file("hello_2.10-3.dsc", b"...")
"""

import asyncio
from typing import Any, BinaryIO, Dict, List, Optional, Union

import ubuntu_ci

from .types import Ticket

Ref = ubuntu_ci.Ref


class DataStore:
    """:class:`ubuntu_ci.DataStore`, its calls as coroutines; made by :meth:`open`."""

    def __init__(self, store: ubuntu_ci.DataStore) -> None:
        self.sync = store

    @classmethod
    async def open(
        cls,
        name: str,
        component: str,
        public: bool = False,
        *,
        backend: Optional[str] = None,
        token: Optional[str] = None,
    ) -> "DataStore":
        """Opens container ``<name>.<component>`` (made if absent)."""
        store = await asyncio.to_thread(
            ubuntu_ci.DataStore, name, component, public, backend=backend, token=token
        )
        return cls(store)

    @property
    def container(self) -> str:
        return self.sync.container

    async def put_file(self, name: str, data: Union[bytes, BinaryIO]) -> str:
        return await asyncio.to_thread(self.sync.put_file, name, data)

    async def get_file(self, name: str) -> bytes:
        return await asyncio.to_thread(self.sync.get_file, name)

    async def download(self, name: str, path: str) -> None:
        await asyncio.to_thread(self.sync.download, name, path)

    async def list_files(self) -> List[Dict[str, Any]]:
        return await asyncio.to_thread(self.sync.list_files)

    async def delete_file(self, name: str) -> None:
        await asyncio.to_thread(self.sync.delete_file, name)

    async def change_visibility(self, public: bool) -> None:
        await asyncio.to_thread(self.sync.change_visibility, public)

    async def delete(self, recursive: bool = False) -> None:
        await asyncio.to_thread(self.sync.delete, recursive)

    def file_url(self, name: str) -> str:
        return self.sync.file_url(name)


class TicketSystem:
    """:class:`ubuntu_ci.TicketSystem`, its calls as coroutines; made by :meth:`open`."""

    def __init__(self, tickets: ubuntu_ci.TicketSystem) -> None:
        self.sync = tickets

    @classmethod
    async def open(
        cls, url: Optional[str] = None, *, token: Optional[str] = None
    ) -> "TicketSystem":
        """Opens the configured ticket system, or the one ``url`` names."""
        return cls(await asyncio.to_thread(ubuntu_ci.TicketSystem, url, token=token))

    async def create_ticket(
        self,
        title: str,
        owner: Optional[str] = None,
        description: str = "",
        bug_id: str = "",
    ) -> str:
        return await asyncio.to_thread(self.sync.create_ticket, title, owner, description, bug_id)

    async def get_or_create_source_package(self, name: str) -> str:
        return await asyncio.to_thread(self.sync.get_or_create_source_package, name)

    async def create_source_package_upload(
        self, sourcepackage: Ref, version: str, fingerprint: str = ""
    ) -> str:
        return await asyncio.to_thread(
            self.sync.create_source_package_upload, sourcepackage, version, fingerprint
        )

    async def create_subticket(self, source_package_upload: Ref, ticket: Ref, assignee: str) -> str:
        return await asyncio.to_thread(
            self.sync.create_subticket, source_package_upload, ticket, assignee
        )

    async def create_artifact(
        self,
        name: str,
        reference: str,
        type: str,
        *,
        subticket: Optional[Ref] = None,
        ticket: Optional[Ref] = None,
    ) -> str:
        return await asyncio.to_thread(
            self.sync.create_artifact, name, reference, type, subticket=subticket, ticket=ticket
        )

    async def get_ticket(self, ticket: Ref) -> Dict[str, Any]:
        return await asyncio.to_thread(self.sync.get_ticket, ticket)

    async def ticket(self, ticket: Ref) -> Ticket:
        return await asyncio.to_thread(self.sync.ticket, ticket)


# How long one worker-thread wait lasts: a cancelled coroutine frees its thread by then.
_POLL = 0.25


def _next_or_end(request: ubuntu_ci.Request) -> Any:
    """The next message, ``_END`` after the last, ``None`` when none came in time."""
    try:
        return request.next_message(_POLL)
    except StopIteration:
        return _END
    except TimeoutError:
        return None


def _outcome_or_none(request: ubuntu_ci.Request) -> Optional[Dict[str, Any]]:
    try:
        return request.outcome(_POLL)
    except TimeoutError:
        return None


_END = object()


class Request:
    """:class:`ubuntu_ci.Request` as an async iterator of its progress messages. Each wait
    runs in a worker thread a quarter of a second at a time, so a cancelled coroutine
    (``asyncio.wait_for``, a task cancelled) leaves no thread waiting behind it."""

    def __init__(self, request: ubuntu_ci.Request) -> None:
        self.sync = request

    @property
    def ticket_id(self) -> int:
        return self.sync.ticket_id

    async def cancel(self) -> None:
        await asyncio.to_thread(self.sync.cancel)

    def __aiter__(self) -> "Request":
        return self

    async def __anext__(self) -> Dict[str, Any]:
        while True:
            message = await asyncio.to_thread(_next_or_end, self.sync)
            if message is _END:
                raise StopAsyncIteration
            if message is not None:
                return message

    async def outcome(self) -> Dict[str, Any]:
        while True:
            outcome = await asyncio.to_thread(_outcome_or_none, self.sync)
            if outcome is not None:
                return outcome


class Lander:
    """:class:`ubuntu_ci.Lander`, its calls as coroutines; made by :meth:`open`."""

    def __init__(self, lander: ubuntu_ci.Lander) -> None:
        self.sync = lander

    @classmethod
    async def open(
        cls,
        series: Optional[str] = None,
        *,
        url: Optional[str] = None,
        token: Optional[str] = None,
    ) -> "Lander":
        """This machine's lander, or the server's that ``url`` names."""
        return cls(await asyncio.to_thread(ubuntu_ci.Lander, series, url=url, token=token))

    async def submit(
        self,
        ticket: Ref,
        *,
        series: Optional[str] = None,
        base_image: Optional[str] = None,
        binary_packages: Optional[List[str]] = None,
    ) -> Request:
        request = await asyncio.to_thread(
            self.sync.submit,
            ticket,
            series=series,
            base_image=base_image,
            binary_packages=binary_packages,
        )
        return Request(request)

    async def execute(self, request: Dict[str, Any]) -> Request:
        return Request(await asyncio.to_thread(self.sync.execute, request))


__all__ = ["DataStore", "Lander", "Request", "TicketSystem"]
