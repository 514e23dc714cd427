"""Generic Dynamic Heartbeat Receiver: which elements are alive, from the heartbeats they send.

What the connector's help page says, and where it lives here:

* **Receiving heartbeats** (`receive_heartbeat`): any element sets the write parameter
  *Heartbeat* to a JSON object ``{"source": "<element name or any id>", "interval": <seconds
  between its beats>, "time": <epoch seconds when it sent>}``, e.g. from a QAction with
  ``protocol.set_element_parameter("Heartbeat Receiver", "Heartbeat", text)``
  (`heartbeat_text` builds the text). The first beat of a source creates its row of the
  *Heartbeats* table (dynamically: nothing is configured per source); each beat updates Last
  Beat (when it arrived, on this DMS's clock), Expected Interval (the interval it announced),
  Sender Time and Beats Received, and makes the source OK.
* **Missing sources** (`check_heartbeats`, every `CHECK_PERIOD` seconds): a source from which no
  beat came within its interval times *Missing Tolerance* (2.5 by default) becomes Missing. Its
  Missed Beats grow by one for each whole interval of silence since its last beat, as long as it
  stays Missing (beats late but within the tolerance are not counted). The silence is counted
  from the last beat or from when this element started, whichever is later: beats sent while it
  was stopped could not arrive.
* **Alarm**: assign `HEARTBEAT_ALARMS` (Status Missing is a Major alarm on the source's row) and a
  Missing source raises an alarm that clears when its beats return or its row is deleted.
* **A source that is gone**: its row's *Delete* button removes the row (and clears its alarm).
* **Refusals**: a heartbeat that is not such a JSON object (not JSON, a source that is empty or
  not text, an interval or time that is not a sensible number) changes no row; the refusal is
  logged with the reason and counted in *Heartbeats Refused*, the reason shown in *Last Refusal*.

The table and the counters are saved, so a restart shows them at once.
"""

from __future__ import annotations

import json
import math
from typing import Any

from dmemu.dms import AlarmTemplate, DiscreteSeverities, Severity
from dmemu.protocol import (
    Button,
    Column,
    DateTime,
    Discrete,
    LogType,
    Number,
    Page,
    Parameter,
    Protocol,
    QAction,
    QActionProtocol,
    String,
    Table,
    Timer,
)
from dmemu.protocol.measurement import FIRST_DATE_TIME, LAST_DATE_TIME

CHECK_PERIOD = 10  # seconds between two checks for missing sources
MAX_INTERVAL = 7 * 86_400  # a longer announced interval is taken for a mistake
MAX_SOURCE_LENGTH = 256
_REFUSED_TEXT_LIMIT = 120  # characters of a refused heartbeat kept in the log

# Status of a source (column "Status" of the Heartbeats table)
OK, MISSING = 1, 2

HEARTBEAT_ALARMS = AlarmTemplate("Generic Dynamic Heartbeat Receiver", {"Status": DiscreteSeverities({"Missing": Severity.MAJOR})})
"""The receiver's default alarm template: a Missing source is a Major alarm on its row."""


class HeartbeatError(ValueError):
    """A heartbeat that cannot be taken; the message says why."""


def heartbeat_text(source: str, interval: float, time: float) -> str:
    """The text a sender sets on the receiver's Heartbeat parameter."""
    return json.dumps({"source": source, "interval": interval, "time": time})


def _number(value: Any, name: str) -> float:
    # An int is always finite (and may be too large for a float: not converted here).
    if type(value) is not int and (type(value) is not float or not math.isfinite(value)):
        raise HeartbeatError(f"{name!r} must be a number, not {_cut(json.dumps(value))}")
    return value  # type: ignore[no-any-return]


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_heartbeat(text: Any) -> tuple[str, float, float]:
    """(source, interval, time) of a heartbeat, or `HeartbeatError` saying what is wrong."""
    if not isinstance(text, str):
        raise HeartbeatError(f"a heartbeat is JSON text, not {type(text).__name__}")
    try:
        beat = json.loads(text)
    except ValueError as error:
        raise HeartbeatError(f"not JSON ({error})") from None
    if not isinstance(beat, dict):
        raise HeartbeatError(f"a heartbeat is a JSON object, not {type(beat).__name__}")
    missing = [field for field in ("source", "interval", "time") if field not in beat]
    if missing:
        raise HeartbeatError(f"{', '.join(repr(field) for field in missing)} missing")
    source = beat["source"]
    if not isinstance(source, str) or not source.strip():
        raise HeartbeatError(f"'source' must be a non-empty string, not {_cut(json.dumps(source))}")
    source = source.strip()
    if len(source) > MAX_SOURCE_LENGTH:
        raise HeartbeatError(f"'source' is {len(source)} characters long; at most {MAX_SOURCE_LENGTH} are taken")
    interval = _number(beat["interval"], "interval")
    if not 0 < interval <= MAX_INTERVAL:
        raise HeartbeatError(f"'interval' {_cut(repr(interval))} is out of range: more than 0, at most {MAX_INTERVAL} seconds")
    time = _number(beat["time"], "time")
    if not FIRST_DATE_TIME <= time <= LAST_DATE_TIME:
        raise HeartbeatError(f"'time' {_cut(repr(time))} is not a moment in epoch seconds")
    return source, interval, time


# --------------------------------------------------------------------------------------------
# QActions


def _count_sources(protocol: QActionProtocol) -> None:
    statuses = protocol.get_column("Heartbeats", "Status").values()
    protocol.set_parameters({"Sources": len(statuses), "Missing Sources": sum(status == MISSING for status in statuses)})


def receive_heartbeat(protocol: QActionProtocol) -> None:
    """QAction 1: a beat on the Heartbeat parameter."""
    text = protocol.trigger_value  # not the parameter: a later beat may already stand there
    try:
        source, interval, sent = parse_heartbeat(text)
    except HeartbeatError as error:
        shown = _cut(text, _REFUSED_TEXT_LIMIT) if isinstance(text, str) else text
        protocol.log(f"heartbeat refused: {error}: {shown!r}", LogType.ERROR)
        protocol.set_parameters({"Heartbeats Refused": protocol.get_parameter("Heartbeats Refused") + 1, "Last Refusal": str(error)})
        return
    now = protocol.now()
    # Last Beat, Expected Interval, Beats Received, Missed Beats, Status, Sender Time
    old_status, received = protocol.get_cell("Heartbeats", source, "Status"), protocol.get_cell("Heartbeats", source, "Beats Received")
    if old_status is None:
        protocol.add_row("Heartbeats", [source, now, interval, 1, 0, OK, sent])
        protocol.log(f"first heartbeat from {source!r} (every {interval:g} s)")
        _count_sources(protocol)
        return
    protocol.set_row("Heartbeats", source, [None, now, interval, received + 1, None, OK, sent])
    if old_status == MISSING:
        protocol.log(f"heartbeats from {source!r} are back")
        _count_sources(protocol)


def check_heartbeats(protocol: QActionProtocol) -> None:
    """QAction 2, every CHECK_PERIOD seconds: sources silent for longer than allowed go Missing."""
    now = protocol.now()
    tolerance = protocol.get_parameter("Missing Tolerance")
    started = protocol.get_parameter("Receiving Since") or now
    last_check = protocol.get_parameter("Last Check")
    changed = False
    for source in protocol.get_keys("Heartbeats"):
        _, last_beat, interval, _, missed, status, *_ = protocol.get_row("Heartbeats", source)
        since = max(last_beat, started)  # beats sent while this element was stopped could not come
        silence = now - since
        if silence <= interval * tolerance:
            continue
        # Whole intervals of silence not yet counted: all of them when it just went missing.
        counted_until = since if status != MISSING or last_check is None else max(last_check, since)
        newly_missed = math.floor(silence / interval) - math.floor((counted_until - since) / interval)
        if status == MISSING and newly_missed <= 0:
            continue  # nothing new: the row is not written (nor saved) again
        protocol.set_row("Heartbeats", source, [None, None, None, None, missed + max(0, newly_missed), MISSING])
        if status != MISSING:
            changed = True
            protocol.log(f"no heartbeat from {source!r} for {silence:g} s (expected every {interval:g} s): Missing", LogType.ERROR)
    protocol.set_parameter("Last Check", now)
    if changed:
        _count_sources(protocol)


def delete_source(protocol: QActionProtocol) -> None:
    """QAction 3: a row's Delete button: the source is gone, its row (and alarm) goes too."""
    source = protocol.row_key
    if source is not None and protocol.delete_row("Heartbeats", source):
        protocol.log(f"source {source!r} deleted")
        _count_sources(protocol)


def started(protocol: QActionProtocol) -> None:
    """QAction 4, at start-up: silence is counted from now for sources whose beats could not come."""
    protocol.set_parameter("Receiving Since", protocol.now())


# --------------------------------------------------------------------------------------------
# The protocol


class GenericDynamicHeartbeatReceiver(Protocol):
    """The Generic Dynamic Heartbeat Receiver connector (see the module's text): a row per
    source on its first beat, and a source that misses its beats goes Missing (an alarm)."""

    name = "Generic Dynamic Heartbeat Receiver"
    version = "1.0.0.1"
    description = "A row per heartbeat source, created on its first beat; sources that miss their beats go Missing."
    pages = (
        Page("General", order=0),
        Page("Configuration", order=1),
    )
    parameters = (
        Parameter(10, "Heartbeat", String(max_length=4096), write=True, default="", page="General",
                  description='A beat: JSON {"source": ..., "interval": seconds, "time": epoch seconds}.'),
        Parameter(11, "Sources", Number(0), default=0, save=True, page="General"),
        Parameter(12, "Missing Sources", Number(0), default=0, save=True, page="General"),
        Parameter(13, "Heartbeats Refused", Number(0), default=0, save=True, page="General"),
        Parameter(14, "Last Refusal", String(), default="", save=True, page="General",
                  description="Why the last refused heartbeat was refused."),
        # Not saved: after a restart silence counts from the start, later than any check before it.
        Parameter(15, "Last Check", DateTime(), description="When the sources were last checked."),
        Parameter(16, "Receiving Since", DateTime(), description="When this element started receiving."),
        # Configuration
        Parameter(100, "Missing Tolerance", Number(1, 100, "x", decimals=1), write=True, default=2.5, save=True,
                  page="Configuration",
                  description="A source is Missing when no beat came within its interval times this."),
    )  # fmt: skip
    tables = (
        Table(1000, "Heartbeats", save=True, page="General", columns=(
            Column(1001, "Source", String(), key=True),
            Column(1002, "Last Beat", DateTime(), description="When its last beat arrived (this DMS's clock)."),
            Column(1003, "Expected Interval", Number(0, units="s", decimals=1), description="As its last beat announced."),
            Column(1004, "Beats Received", Number(0)),
            Column(1005, "Missed Beats", Number(0), description="Intervals of silence while it was Missing."),
            Column(1006, "Status", Discrete({OK: "OK", MISSING: "Missing"})),
            Column(1007, "Sender Time", DateTime(), description="When its last beat was sent (the sender's clock)."),
            Column(1008, "Delete", Button("Delete"), write=True, description="Remove the row of a source that is gone."),
        )),
    )  # fmt: skip
    timers = (Timer(1, seconds=CHECK_PERIOD, qactions=(2,), at_startup=False, name="Heartbeat Check"),)
    qactions = (
        QAction(1, receive_heartbeat, triggers=(10,), name="Receive Heartbeat"),
        QAction(2, check_heartbeats, name="Heartbeat Check"),
        QAction(3, delete_source, triggers=(1008,), row=True, name="Delete Source"),
        QAction(4, started, after_startup=True, name="Receiving Since"),
    )


__all__ = [
    "CHECK_PERIOD",
    "HEARTBEAT_ALARMS",
    "MISSING",
    "OK",
    "GenericDynamicHeartbeatReceiver",
    "HeartbeatError",
    "heartbeat_text",
    "parse_heartbeat",
]
