"""Exceptions the DataMiner System's services raise, each naming what was wrong."""

from __future__ import annotations

from ..protocol.errors import DmemuError, ElementError, StateFileError


class DuplicateElementError(ElementError):
    """An element with that name or id pair already exists."""


class UnknownScriptError(DmemuError, LookupError):
    """No automation script is registered under that name."""


class WaitTimeoutError(DmemuError, TimeoutError):
    """An automation script waited for a parameter longer than its timeout."""


class ScriptKilledError(DmemuError):
    """An automation script run was killed (`ScriptRun.kill`); the message is the reason given."""


class TicketingError(DmemuError):
    """The ticketing refused a request; the message names the ticket type, ticket or field."""


class TicketTypeError(TicketingError):
    """A ticket type is inconsistent, or changes incompatibly from its stored definition."""


class UnknownTicketTypeError(TicketTypeError, LookupError):
    """No ticket type of that name is defined."""


class TicketFieldError(TicketingError, ValueError):
    """A ticket field value is refused: wrong kind, not a listed enum value, unknown field, or a
    required field left without a value. `ticket_type` and `field` say which."""

    def __init__(self, message: str, *, ticket_type: str, field: str) -> None:
        super().__init__(message)
        self.ticket_type = ticket_type
        self.field = field


class TicketStateError(TicketingError, ValueError):
    """An unknown ticket state, or a move between states the ticket lifecycle does not allow."""


class TicketNotFoundError(TicketingError, LookupError):
    """No ticket has that id."""


class AlarmError(DmemuError):
    """An alarm cannot be used that way (e.g. a property that is not a string)."""


class UnknownAlarmError(AlarmError, LookupError):
    """No active alarm, nor a cleared one still kept, has that id."""


class AlarmTemplateError(AlarmError, ValueError):
    """An alarm template does not fit: an unknown parameter, thresholds on a value that is no
    number, limits out of order or overlapping. The message names the parameter."""


class ProtocolImportError(StateFileError):
    """Saved state names a protocol (``module:QualifiedName``) that cannot be imported here."""

    def __init__(self, message: str, *, protocol: str, reason: str) -> None:
        super().__init__(message)
        self.protocol = protocol
        self.reason = reason  # what importing it raised, e.g. "ModuleNotFoundError: No module named 'x'"
