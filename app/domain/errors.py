"""The domain's error kinds; app/api/errors.py maps each to one HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose; `message` is shown to the API user verbatim."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    code = "not_found"


class InvalidRequest(DomainError):
    code = "invalid_request"


class InvalidState(DomainError):
    """The devbox or execution is in a status that does not allow the operation; retrying will not help."""

    code = "invalid_state"


class Conflict(DomainError):
    code = "conflict"


class Unsupported(DomainError):
    code = "not_supported"


class WaitTimeout(DomainError):
    code = "timeout"


class BackendUnavailable(DomainError):
    code = "backend_unavailable"


class BackendError(Exception):
    """Raised by a driver when the container engine refuses or fails an operation."""


class ContainerGone(BackendError):
    """The container a devbox relies on no longer exists."""


class Unauthorized(DomainError):
    code = "unauthorized"
