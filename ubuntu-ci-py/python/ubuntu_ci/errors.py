"""The exceptions of ubuntu_ci: one class per kind of error of the system.

Every exception is an :class:`Error`; not-found errors are also :class:`FileNotFoundError`,
invalid input also :class:`ValueError`, unavailable services also :class:`ConnectionError`,
so code that catches the built-in kinds catches them too.
"""

from typing import Optional


class Error(Exception):
    """An error of ubuntu-ci.

    ``kind`` is the wire name of its kind (``"not_found"``); ``message`` says what went
    wrong; ``operation`` and ``resource`` say where, when known.
    """

    kind = "internal"

    def __init__(
        self,
        text: str,
        *,
        message: Optional[str] = None,
        operation: Optional[str] = None,
        resource: Optional[str] = None,
    ) -> None:
        super().__init__(text)
        self.message = message if message is not None else text
        self.operation = operation
        self.resource = resource

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed if made again later."""
        return False


class InvalidInputError(Error, ValueError):
    """The input (a file, a field, a name) is malformed or not allowed."""

    kind = "invalid_input"


class NotFoundError(Error, FileNotFoundError):
    """The resource asked for does not exist."""

    kind = "not_found"


class ConflictError(Error):
    """The request contradicts what is stored (a duplicate, other content under one name)."""

    kind = "conflict"


class UnauthorizedError(Error, PermissionError):
    """Credentials are missing or wrong."""

    kind = "unauthorized"


class TooLargeError(Error):
    """The body or file is larger than allowed."""

    kind = "too_large"


class UnavailableError(Error, ConnectionError):
    """A service is unreachable or busy for now; trying again later may succeed."""

    kind = "unavailable"

    @property
    def retryable(self) -> bool:
        return True


class UnsupportedError(Error, NotImplementedError):
    """The operation or backend is not implemented (yet) or not enabled in this build."""

    kind = "unsupported"


class InternalError(Error):
    """Something failed inside ubuntu-ci or its storage: a bug or a broken environment."""

    kind = "internal"


_BY_KIND = {
    cls.kind: cls
    for cls in (
        InvalidInputError,
        NotFoundError,
        ConflictError,
        UnauthorizedError,
        TooLargeError,
        UnavailableError,
        UnsupportedError,
        InternalError,
    )
}


def _from_native(
    kind: str,
    text: str,
    message: str,
    operation: Optional[str],
    resource: Optional[str],
) -> Error:
    """The exception for an error of the native module (an unknown kind is internal)."""
    cls = _BY_KIND.get(kind, InternalError)
    error = cls(text, message=message, operation=operation, resource=resource)
    if isinstance(error, OSError):
        # OSError's constructor takes (errno, strerror): keep the whole text as its message.
        error.strerror = text
    return error


__all__ = [
    "Error",
    "InvalidInputError",
    "NotFoundError",
    "ConflictError",
    "UnauthorizedError",
    "TooLargeError",
    "UnavailableError",
    "UnsupportedError",
    "InternalError",
]
