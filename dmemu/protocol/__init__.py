"""The connector engine: protocol definitions, elements and their queue, the QAction API,
tables, measurements, HTTP connections, clock and timers, storage and test assertions.

The DataMiner System the elements run in, with its services (alarms, automation, ticketing,
requests between elements, saved systems), is `dmemu.dms`, built on this package; the engine
reaches it only through the seam in `host`. Its names are still offered here, loaded on first
use, for code that imports them from `dmemu.protocol`."""

from .changes import Change, ParameterChange, TableChange
from .clock import Clock, RealClock, VirtualClock
from .definitions import (
    Column,
    DisplayKey,
    HttpConnection,
    Page,
    Parameter,
    Protocol,
    QAction,
    SerialConnection,
    Table,
    Timer,
)
from .element import Element, ElementRef, ElementState, ReadableElement, TableView, element_ids
from .errors import (
    ClockTimeError,
    ConnectionSettingError,
    DefinitionError,
    DmemuError,
    ElementError,
    ElementNotFoundError,
    ElementStateError,
    InvalidValueError,
    MessageFormatError,
    ParameterError,
    QActionFailedError,
    QActionLoopError,
    ReadOnlyParameterError,
    SerialConnectionError,
    SerialPortError,
    SerialTimeoutError,
    StateFileError,
    UnknownParameterError,
    UnknownRowError,
)
from .http import BYPASS_PROXY, NO_RETRIES, Connection, ElementSession, RetryPolicy, build_session, plain_http_target
from .logs import LogEntry, LogLevel, LogType
from .measurement import Button, DateTime, Discrete, Number, PageButton, String
from .messages import Reply, ReplyAddress, Request
from .qaction import QActionProtocol, SetStatus
from .serial import Framing, HttpAnswer, HttpFraming, LengthFraming, SerialPort, TrailerFraming
from .testing import expect

__all__ = [
    "BYPASS_PROXY",
    "NO_RETRIES",
    "Button",
    "Change",
    "Clock",
    "ClockTimeError",
    "Column",
    "Connection",
    "ConnectionSettingError",
    "DateTime",
    "DefinitionError",
    "Discrete",
    "DisplayKey",
    "DmemuError",
    "Element",
    "ElementError",
    "ElementNotFoundError",
    "ElementRef",
    "ElementSession",
    "ElementState",
    "ElementStateError",
    "Framing",
    "HttpAnswer",
    "HttpConnection",
    "HttpFraming",
    "InvalidValueError",
    "LengthFraming",
    "LogEntry",
    "LogLevel",
    "LogType",
    "MessageFormatError",
    "Number",
    "Page",
    "ParameterChange",
    "PageButton",
    "Parameter",
    "ParameterError",
    "Protocol",
    "QAction",
    "QActionFailedError",
    "QActionLoopError",
    "QActionProtocol",
    "ReadOnlyParameterError",
    "ReadableElement",
    "RealClock",
    "Reply",
    "ReplyAddress",
    "Request",
    "RetryPolicy",
    "SerialConnection",
    "SerialConnectionError",
    "SerialPort",
    "SerialPortError",
    "SerialTimeoutError",
    "SetStatus",
    "StateFileError",
    "String",
    "Table",
    "TableChange",
    "TableView",
    "Timer",
    "TrailerFraming",
    "UnknownParameterError",
    "UnknownRowError",
    "VirtualClock",
    "build_session",
    "element_ids",
    "expect",
    "plain_http_target",
]

# The system's public names (`dmemu.dms.__all__`), as code written before `dmemu.dms` existed
# imports them. Resolved on first use (PEP 562), so importing the engine never imports the system.
def __getattr__(name: str) -> object:
    if not name.startswith("_"):
        import dmemu.dms

        if name in dmemu.dms.__all__:
            return getattr(dmemu.dms, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
