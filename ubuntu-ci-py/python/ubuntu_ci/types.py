"""Typed, read-only views of what the ticket system returns (its REST API's JSON)."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple


def _time(text: str) -> datetime:
    # RFC 3339 with a Z: fromisoformat takes an offset from Python 3.11 only.
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Subticket:
    """One source package upload of a ticket, and who it is assigned to."""

    id: int
    resource_uri: str
    source_package_upload: str
    ticket: str
    assignee: str
    created_at: datetime

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Subticket":
        return cls(
            id=data["id"],
            resource_uri=data["resource_uri"],
            source_package_upload=data["source_package_upload"],
            ticket=data["ticket"],
            assignee=data["assignee"],
            created_at=_time(data["created_at"]),
        )


@dataclass(frozen=True)
class Artifact:
    """A file a step left (`type`: SPU, BUILD_LOG, IMAGE, TEST_RESULT, …) and where it is."""

    id: int
    resource_uri: str
    name: str
    subticket: Optional[str]
    ticket: str
    reference: str
    type: str
    created_at: datetime

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Artifact":
        return cls(
            id=data["id"],
            resource_uri=data["resource_uri"],
            name=data["name"],
            subticket=data.get("subticket"),
            ticket=data["ticket"],
            reference=data["reference"],
            type=data["type"],
            created_at=_time(data["created_at"]),
        )


@dataclass(frozen=True)
class Transition:
    """A step of the ticket's workflow reaching a status, with its message."""

    id: int
    resource_uri: str
    ticket: str
    step: str
    status: str
    message: str
    created_at: datetime

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Transition":
        return cls(
            id=data["id"],
            resource_uri=data["resource_uri"],
            ticket=data["ticket"],
            step=data["step"],
            status=data["status"],
            message=data["message"],
            created_at=_time(data["created_at"]),
        )


@dataclass(frozen=True)
class Ticket:
    """A ticket with its subtickets, artifacts and progress (transitions, oldest first).

    ``current_workflow_step`` and ``status`` say where it stands (``IMAGE_TEST``,
    ``IN_PROGRESS``); ``state`` is ``open`` or ``closed`` (completed, failed or cancelled).
    """

    id: int
    resource_uri: str
    owner: str
    title: str
    description: str
    bug_id: str
    current_workflow_step: str
    status: str
    state: str
    created_at: datetime
    updated_at: datetime
    subtickets: Tuple[Subticket, ...] = field(default_factory=tuple)
    artifacts: Tuple[Artifact, ...] = field(default_factory=tuple)
    progress: Tuple[Transition, ...] = field(default_factory=tuple)

    @property
    def closed(self) -> bool:
        """Whether the ticket ended (completed, failed or cancelled)."""
        return self.state == "closed"

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Ticket":
        def each(key: str, kind: Any) -> Tuple[Any, ...]:
            items: List[Dict[str, Any]] = data.get(key) or []
            return tuple(kind.from_dict(item) for item in items)

        return cls(
            id=data["id"],
            resource_uri=data["resource_uri"],
            owner=data["owner"],
            title=data["title"],
            description=data["description"],
            bug_id=data["bug_id"],
            current_workflow_step=data["current_workflow_step"],
            status=data["status"],
            state=data["state"],
            created_at=_time(data["created_at"]),
            updated_at=_time(data["updated_at"]),
            subtickets=each("subtickets", Subticket),
            artifacts=each("artifacts", Artifact),
            progress=each("progress", Transition),
        )


__all__ = ["Artifact", "Subticket", "Ticket", "Transition"]
