"""Errors as the API answers them: ``{"error": {"field": ..., "reason": ...}}`` with a 4xx status.

`field` names what was wrong (a parameter's name, a query parameter, ``element``, ``token``),
`reason` says why in the engine's own words, so a form can show the message next to the field.
"""

from __future__ import annotations

from ..dms.errors import (
    AlarmError,
    TicketFieldError,
    TicketingError,
    TicketNotFoundError,
    TicketStateError,
    UnknownAlarmError,
    UnknownScriptError,
    UnknownTicketTypeError,
)
from ..pages import UnknownPageError
from ..protocol.errors import (
    DmemuError,
    ElementNotFoundError,
    ElementStateError,
    InvalidValueError,
    QActionFailedError,
    ReadOnlyParameterError,
    StateFileError,
    UnknownParameterError,
    UnknownRowError,
)


class ApiError(DmemuError):
    """What a request got wrong: the HTTP status, the field it names and the reason."""

    def __init__(self, status: int, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.field = field
        self.reason = reason

    def body(self) -> dict[str, dict[str, str | None]]:
        """The JSON the API answers: ``{"error": {"field": ..., "reason": ...}}`` (field None when
        the request as a whole is at fault)."""
        return {"error": {"field": self.field, "reason": self.reason}}


# The engine's errors a request can cause, most specific first: (error class, status).
_STATUSES: tuple[tuple[type[Exception], int], ...] = (
    (ElementNotFoundError, 404),
    (UnknownParameterError, 404),
    (UnknownRowError, 404),
    (UnknownPageError, 404),
    (UnknownAlarmError, 404),
    (TicketNotFoundError, 404),
    (UnknownTicketTypeError, 404),
    (UnknownScriptError, 404),
    (InvalidValueError, 422),
    (TicketFieldError, 422),
    (ReadOnlyParameterError, 403),
    (ElementStateError, 409),
    (TicketStateError, 409),
    (QActionFailedError, 500),
    (AlarmError, 422),
    (TicketingError, 422),
    (StateFileError, 500),  # the disk, not the request
    (DmemuError, 409),  # anything else dmemu refuses on purpose: the system's state does not allow it (closed)
)


def api_error(error: Exception, field: str | None) -> ApiError | None:
    """The answer to an engine error a request caused (None: not one a request causes)."""
    if isinstance(error, ApiError):
        return error
    for kind, status in _STATUSES:
        if isinstance(error, kind):
            return ApiError(status, field, str(error))
    return None
