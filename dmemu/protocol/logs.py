"""DataMiner's element log: types, levels and entries."""

from __future__ import annotations

import enum

import attrs


class LogType(enum.Enum):
    INFORMATION = "Information"
    ERROR = "Error"
    DEBUG = "Debug"
    ALWAYS = "Always"


class LogLevel(enum.IntEnum):
    """A message is kept when its level is at most the element's log level (0 is always kept)."""

    NO_LOGGING = 0
    LEVEL_1 = 1
    LEVEL_2 = 2
    LEVEL_3 = 3
    LEVEL_4 = 4
    LEVEL_5 = 5


@attrs.frozen
class LogEntry:
    time: float
    type: LogType
    level: LogLevel
    message: str
