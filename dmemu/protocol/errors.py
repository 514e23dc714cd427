"""Exceptions a user of the engine can meet, each naming what was wrong."""

from __future__ import annotations


class DmemuError(Exception):
    """Base class of every error dmemu raises on purpose."""


class DefinitionError(DmemuError):
    """A protocol definition is inconsistent (raised when the protocol class is created)."""


class ParameterError(DmemuError):
    """A get or set named a parameter that cannot be used that way."""


class UnknownParameterError(ParameterError, KeyError):
    """No parameter or table has that id or name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ReadOnlyParameterError(ParameterError):
    """A user tried to set a read parameter; only write parameters are set by users."""


class InvalidValueError(ParameterError, ValueError):
    """A value does not fit the parameter's measurement type (type, range or discrete)."""


class UnknownRowError(ParameterError, KeyError):
    """A table has no row with that primary key."""

    def __str__(self) -> str:
        return str(self.args[0])


class ElementError(DmemuError):
    """An element cannot do what was asked in its current state."""


class ElementNotFoundError(ElementError, LookupError):
    """No element in the DataMiner System has that name or id pair."""


class ElementStateError(ElementError):
    """The element is not in a state that allows the operation (e.g. a set on a stopped element)."""


class DuplicateElementError(ElementError):
    """An element with that name or id pair already exists."""


class ClockTimeError(DmemuError, ValueError):
    """A clock was given a time it cannot use: not a number of seconds (or a datetime where one
    is allowed), not finite, or a step back. The message names the argument."""


class QActionLoopError(DmemuError):
    """A chain of QActions triggering each other did not settle."""


class StateFileError(DmemuError):
    """A state file cannot be read or written; the message names the file."""


class UnknownScriptError(DmemuError, LookupError):
    """No automation script is registered under that name."""


class WaitTimeoutError(DmemuError, TimeoutError):
    """An automation script waited for a parameter longer than its timeout."""


class MessageFormatError(DmemuError, ValueError):
    """A parameter's text is not the request or reply envelope elements exchange."""


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
