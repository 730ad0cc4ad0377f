"""ubuntu_ci: continuous integration of Debian/Ubuntu source packages, from Python.

The seed's calls, on the embedded services (this machine's data dir, no configuration) or
on an ``ubuntu-ci serve`` server::

    from ubuntu_ci import DataStore, TicketSystem

    tickets = TicketSystem()
    ticket = tickets.create_ticket("hello", owner="dev@example.com")
    data_store = DataStore("ticket.1", "sources", public=True)
    with open("hello_2.10-3_source.changes", "rb") as f:
        url = data_store.put_file("hello_2.10-3_source.changes", f)

:class:`Lander` runs a ticket's request through every step (PPA, build, image, tests,
publishing) on this machine, its progress iterated as dicts::

    request = Lander().submit(ticket)
    for message in request:
        print(message)
    print(request.outcome()["state"])

Errors are :class:`ubuntu_ci.Error` (one subclass per kind, see :mod:`ubuntu_ci.errors`);
:mod:`ubuntu_ci.aio` has the same calls as coroutines. See docs/python.md.
"""

import os
from typing import Any, Dict, List, Optional, Union

from . import _native
from ._native import DataStore, Lander, Request
from .errors import (
    ConflictError,
    Error,
    InternalError,
    InvalidInputError,
    NotFoundError,
    TooLargeError,
    UnauthorizedError,
    UnavailableError,
    UnsupportedError,
)
from .types import Artifact, Subticket, Ticket, Transition

__version__: str = _native.version()

Ref = Union[str, int]
"""A resource: its URI (``/api/v1/ticket/1/``), its whole URL, or its id."""


def submit(
    title: str,
    sources: List[Union[str, "os.PathLike[str]"]],
    *,
    owner: Optional[str] = None,
    description: str = "",
    bug_id: str = "",
    assignee: Optional[str] = None,
) -> Ticket:
    """Creates a ticket for the source package uploads ``sources`` (``_source.changes``
    files, the files they list beside them), as ``ubuntu-ci create-ticket -s`` does: every
    upload checked first (nothing is made when one is bad), then the ticket, its uploads
    and subtickets, and every file stored and recorded as an ``SPU`` artifact, on the
    configured services. The ticket; ``Lander().submit(ticket.id)`` runs it."""
    detail = _native.submit(
        title,
        [os.fspath(source) for source in sources],
        owner=owner,
        description=description,
        bug_id=bug_id,
        assignee=assignee,
    )
    return Ticket.from_dict(detail)


class TicketSystem:
    """The ticket system: by default the configured one (the configuration file and
    ``UBUNTU_CI_*`` variables, as the CLI: the embedded store in the data dir unless a
    server is set); or the one ``url`` names (``http://server/``, ``sqlite:///path``,
    ``postgres://…``), with ``token`` for a server.

    The create calls return the new resource's URI (``/api/v1/ticket/1/``; on a server,
    its whole URL), as the seed shows them.
    """

    def __init__(self, url: Optional[str] = None, *, token: Optional[str] = None) -> None:
        self._native = _native.TicketSystem(url, token=token)

    def create_ticket(
        self,
        title: str,
        owner: Optional[str] = None,
        description: str = "",
        bug_id: str = "",
    ) -> str:
        """Creates a ticket; its URI. ``owner`` defaults to the configured one (or
        ``DEBEMAIL``); ``bug_id`` is a Launchpad bug URL or number."""
        return self._native.create_ticket(title, owner, description, bug_id)

    def get_or_create_source_package(self, name: str) -> str:
        """The source package ``name``, made if new; its URI."""
        return self._native.get_or_create_source_package(name)

    def create_source_package_upload(
        self, sourcepackage: Ref, version: str, fingerprint: str = ""
    ) -> str:
        """Records an upload of a source package (its URI, or its name: made if new) at
        ``version``; its URI."""
        return self._native.create_source_package_upload(sourcepackage, version, fingerprint)

    def create_subticket(self, source_package_upload: Ref, ticket: Ref, assignee: str) -> str:
        """Creates the subticket of ``ticket`` for a source package upload; its URI."""
        return self._native.create_subticket(source_package_upload, ticket, assignee)

    def create_artifact(
        self,
        name: str,
        reference: str,
        type: str,
        *,
        subticket: Optional[Ref] = None,
        ticket: Optional[Ref] = None,
    ) -> str:
        """Records an artifact of a subticket or a ticket; its URI. ``type``: ``SPU``,
        ``BINARY``, ``BUILD_LOG``, ``IMAGE``, ``TEST_LOG``, ``TEST_RESULT`` or ``LOG``."""
        return self._native.create_artifact(
            name, reference, type, subticket=subticket, ticket=ticket
        )

    def get_ticket(self, ticket: Ref) -> Dict[str, Any]:
        """The ticket with its subtickets, artifacts and progress, as the REST API's JSON."""
        return self._native.get_ticket(ticket)

    def ticket(self, ticket: Ref) -> Ticket:
        """The ticket with its subtickets, artifacts and progress, typed."""
        return Ticket.from_dict(self._native.get_ticket(ticket))

    def __repr__(self) -> str:
        return repr(self._native)


__all__ = [
    "Artifact",
    "ConflictError",
    "DataStore",
    "Error",
    "InternalError",
    "InvalidInputError",
    "Lander",
    "NotFoundError",
    "Ref",
    "Request",
    "Subticket",
    "Ticket",
    "TicketSystem",
    "TooLargeError",
    "Transition",
    "UnauthorizedError",
    "UnavailableError",
    "UnsupportedError",
    "__version__",
    "submit",
]
