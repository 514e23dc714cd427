"""The engine: protocol definitions, elements, the QAction API, the DataMiner System, time,
HTTP connections and storage. Everything a connector or a test harness needs is here."""

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
    Table,
    Timer,
)
from .dms import DataMinerSystem, ElementRef
from .element import Element, ElementState, ReadableElement, TableView
from .errors import (
    DefinitionError,
    DmemuError,
    DuplicateElementError,
    ElementError,
    ElementNotFoundError,
    ElementStateError,
    InvalidValueError,
    ParameterError,
    QActionLoopError,
    ReadOnlyParameterError,
    StateFileError,
    UnknownParameterError,
    UnknownRowError,
)
from .http import BYPASS_PROXY, NO_RETRIES, Connection, ElementSession, RetryPolicy, build_session
from .logs import LogEntry, LogLevel, LogType
from .measurement import Button, Discrete, Number, PageButton, String
from .qaction import QActionProtocol, SetStatus
from .saved import SavedElement, SavedSystem
from .testing import expect

__all__ = [
    "BYPASS_PROXY",
    "NO_RETRIES",
    "Button",
    "Change",
    "Clock",
    "Column",
    "Connection",
    "DataMinerSystem",
    "DefinitionError",
    "Discrete",
    "DisplayKey",
    "DmemuError",
    "DuplicateElementError",
    "Element",
    "ElementError",
    "ElementNotFoundError",
    "ElementRef",
    "ElementSession",
    "ElementState",
    "ElementStateError",
    "HttpConnection",
    "InvalidValueError",
    "LogEntry",
    "LogLevel",
    "LogType",
    "Number",
    "Page",
    "ParameterChange",
    "PageButton",
    "Parameter",
    "ParameterError",
    "Protocol",
    "QAction",
    "QActionLoopError",
    "QActionProtocol",
    "ReadOnlyParameterError",
    "ReadableElement",
    "RealClock",
    "RetryPolicy",
    "SavedElement",
    "SavedSystem",
    "SetStatus",
    "StateFileError",
    "String",
    "Table",
    "TableChange",
    "TableView",
    "Timer",
    "UnknownParameterError",
    "UnknownRowError",
    "VirtualClock",
    "build_session",
    "expect",
]
