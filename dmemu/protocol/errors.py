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


class ConnectionSettingError(DmemuError, ValueError):
    """An element's connection setting is refused (a port that is no port, an empty host ...);
    `field` and `value` say which."""

    def __init__(self, message: str, *, field: str, value: object) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class QActionFailedError(DmemuError):
    """A QAction run by a user's set raised (asked for with ``set(..., raise_on_failure=True)``);
    `qaction` is its label, `element` the element's name, and the QAction's own exception is the
    ``__cause__``. The failure is logged on the element either way."""

    def __init__(self, message: str, *, qaction: str, element: str) -> None:
        super().__init__(message)
        self.qaction = qaction
        self.element = element


class ClockTimeError(DmemuError, ValueError):
    """A clock was given a time it cannot use: not a number of seconds (or a datetime where one
    is allowed), not finite, or a step back. The message names the argument."""


class QActionLoopError(DmemuError):
    """A chain of QActions triggering each other did not settle."""


class StateFileError(DmemuError):
    """A state file cannot be read or written; the message names the file."""


class MessageFormatError(DmemuError, ValueError):
    """A parameter's text is not the request or reply envelope elements exchange."""


class SerialPortError(DmemuError):
    """A serial (TCP stream) exchange failed; `target` is the (host, port) it talked to."""

    def __init__(self, message: str, *, target: tuple[str, int]) -> None:
        super().__init__(message)
        self.target = target


class SerialTimeoutError(SerialPortError, TimeoutError):
    """No complete answer (or no connection) within the timeout. The socket is closed, so a late
    answer is never read as the next command's."""


class SerialConnectionError(SerialPortError, ConnectionError):
    """The connection was refused, reset or closed mid-answer, or the answer cannot be framed."""
