"""A DataMiner System described in a TOML file: `dmemu serve --system FILE`, or from Python

    description = load_system("system.toml")      # every mistake found here; nothing runs yet
    with start_system(description) as running:     # simulators, DMS, elements, scripts, rules
        with running.serve() as server:             # the REST API and console (server.url, .token)
            ...

A mistake in the file is one `SystemFileError` naming the file, the line and the key
(``system.toml:12: elements[2].connection.port: ...``), raised by `load_system` before anything
starts. The file's tables (README, "System files", shows a whole one):

* ``[system]`` agents, licences, state (a folder, relative to the file; default a temporary one,
  deleted at the end), autosave_seconds;
* ``[clock]`` kind ``real`` (default) or ``virtual``, with its start and an optional speed;
* ``[simulators.tmf]`` (TMF638/639/656/642) and ``[simulators.osb]`` (the Telenet OSB service),
  with their data set, credentials, activity, processing delay and ``[[...faults]]``;
* ``[alarm_templates.NAME]``, ``[scripts.NAME]`` (a named script: ``telenet-ticket-flow`` or a
  ``module:function``), ``[[elements]]`` (created in file order) and ``[[alarm_rules]]``.

Where an element needs a started simulator, ``{ simulator = "tmf" }`` stands for it: its port
as a ``connection.port``, its URL (``http://127.0.0.1:PORT`` and the ``path`` given) as a
parameter value, and the port or host where a connector option asks for one.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import importlib
import math
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs

from .dms import LICENCES, AlarmRule, AlarmTemplate, DataMinerSystem, DiscreteSeverities, Severity, Thresholds
from .dms.alarms import template_problem
from .dms.automation import AlarmEventKind
from .dms.saved import existing_registry
from .protocol import Clock, Connection, Element, Protocol, RealClock, VirtualClock
from .protocol.definitions import protocol_path
from .protocol.errors import ConnectionSettingError, DmemuError
from .protocol.storage import REGISTRY_FILE
from .simulators import Fault, InventorySpec, OsbService, ProblemActivity, RequestRecord, Simulators

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the same parser as a package (setup.cfg)
    import tomli as tomllib

SIMULATOR_KINDS = ("tmf", "osb")
"""The simulators a file can start, by their table name under ``[simulators]``."""
VIRTUAL_STEP = 0.1  # wall seconds between two moves of a virtual clock running at a speed


class SystemFileError(DmemuError):
    """A system file that cannot be used: `path`, `line` (0 when unknown) and `key` (dotted, with
    array indexes from 1 as a person counts them) say where, the message also why."""

    def __init__(self, path: Path, line: int, key: str, reason: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")
        self.path = path
        self.line = line
        self.key = key
        self.reason = reason


# -- where each key sits -----------------------------------------------------------------------

Key = tuple[str | int, ...]  # a key's path: table names, keys and array indexes (from 0)

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY_PART = rf"\s*(?:{_BARE}|{_QUOTED})\s*"
_DOTTED = re.compile(rf"{_KEY_PART}(?:\.{_KEY_PART})*")
_ASSIGNMENT = re.compile(rf"^\s*({_KEY_PART}(?:\.{_KEY_PART})*)=")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_KEY_PART}(?:\.{_KEY_PART})*)=")
_QUOTED_TEXT = re.compile(_QUOTED)
# What a line of an open multi-line array holds at its top level, one token at a time.
_ARRAY_TOKEN = re.compile(rf"\s*(?:(?P<comment>#.*)|(?P<close>\])|(?P<nested>[{{\[])|(?P<scalar>{_QUOTED}|[^,\s\[\]{{}}#]+)|,)")


def _key_parts(text: str) -> tuple[str, ...]:
    parts = re.findall(rf"{_BARE}|{_QUOTED}", text)
    return tuple(part[1:-1] if part[:1] in "\"'" else part for part in parts)


class KeyLines:
    """The line of each key of a TOML text, found by a light scan (table headers, ``key =``
    lines, keys of inline tables, items of multi-line arrays and their tables' keys): for error
    messages only, tomllib having read the file already."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Key, int] = {}
        arrays: dict[Key, int] = {}  # [[x]] headers seen: the index of the latest one
        table: Key = ()
        open_array: Key | None = None  # a `key = [` array running over several lines
        array_items = 0
        quote: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if quote is not None:  # inside a multi-line string
                if line.count(quote) % 2:
                    quote = None
                continue
            stripped = line.strip()
            if stripped.startswith("[[") and open_array is None:
                path = _key_parts(stripped[2 : stripped.find("]]")])
                index = arrays.get(path, -1) + 1
                arrays[path] = index
                table = (*path, index)
                self.lines.setdefault(table, number)
                self.lines.setdefault(path, number)
                continue
            if stripped.startswith("[") and open_array is None:
                table = self._under_arrays(_key_parts(stripped[1 : stripped.find("]")]), arrays)
                self.lines.setdefault(table, number)
                continue
            if open_array is not None:
                array_items, closed = self._array_items(stripped, open_array, array_items, number)
                if closed:
                    open_array = None
                continue
            match = _ASSIGNMENT.match(line)
            if not match:
                continue
            key = (*table, *_key_parts(match.group(1)))
            self.lines.setdefault(key, number)
            value = line[match.end() :].strip()
            for mark in ('"""', "'''"):
                if value.startswith(mark) and value.count(mark) == 1:
                    quote = mark
            if value.startswith("{"):
                self._inline_keys(value, key, number)
            elif value.startswith("[") and value.count("[") > value.count("]"):
                open_array = key
                array_items, _ = self._array_items(value[1:], key, 0, number)
            elif value.startswith("["):
                for index, inline in enumerate(re.finditer(r"\{", value)):
                    self._inline_keys(value[inline.start() :], (*key, index), number)

    @staticmethod
    def _under_arrays(path: tuple[str, ...], arrays: Mapping[Key, int]) -> Key:
        """``[elements.connection]`` under ``[[elements]]`` belongs to the latest element."""
        key: Key = ()
        for part in path:
            key = (*key, part)
            if key in arrays:
                key = (*key, arrays[key])
        return key

    def _array_items(self, text: str, array: Key, index: int, number: int) -> tuple[int, bool]:
        """The items of an open multi-line array on one line, each at this line (scalars and
        inline tables alike), from item `index` on: the next item's index, and whether the array
        closed. A nested array running over lines is not followed: its later lines count as items."""
        position = 0
        while position < len(text):
            token = _ARRAY_TOKEN.match(text, position)
            if token is None or token["comment"] is not None:
                break
            if token["close"] is not None:
                return index, True
            position = token.end()
            if token["nested"] is not None or token["scalar"] is not None:
                item = (*array, index)
                self.lines.setdefault(item, number)
                if token["nested"] == "{":
                    self._inline_keys(text[token.start("nested") :], item, number)
                if token["nested"] is not None:
                    position = _closing(text, token.start("nested"))
                index += 1
        return index, False

    def _inline_keys(self, text: str, parent: Key, number: int) -> None:
        # One level deep is enough to point at the line; a deeper key falls back to its parent's.
        for match in _INLINE_KEY.finditer(text):
            self.lines.setdefault((*parent, *_key_parts(match.group(1))), number)

    def line_of(self, key: Key) -> int:
        """The line of `key`, else of the nearest table or key holding it (0: none found)."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return 0


def _closing(text: str, start: int) -> int:
    """Where the table or array opened at `text[start]` ends (past its bracket; the line's end if
    it does not end on this line), quoted brackets aside."""
    depth = 0
    position = start
    while position < len(text):
        quoted = _QUOTED_TEXT.match(text, position)
        if quoted:
            position = quoted.end()
            continue
        if text[position] in "{[":
            depth += 1
        elif text[position] in "}]":
            depth -= 1
            if depth == 0:
                return position + 1
        position += 1
    return len(text)


def key_text(key: Key) -> str:
    """``elements[2].connection.port``: indexes counted from 1, as a person reads the file."""
    text = ""
    for part in key:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            shown = part if re.fullmatch(_BARE, part) else f'"{part}"'
            text += f".{shown}" if text else shown
    return text


# -- the description ----------------------------------------------------------------------------


@attrs.frozen
class SimulatorRef:
    """``{ simulator = "tmf", path = "/..." }``: a started simulator's port, or its URL."""

    simulator: str
    path: str = ""


@attrs.frozen
class ClockSpec:
    """The file's ``[clock]``: the wall clock, or a virtual one with its start and speed."""

    kind: str = "real"  # "real" or "virtual"
    start: float | None = None  # virtual: epoch seconds (None: the DMS's default start)
    speed: float | None = None  # virtual: simulated seconds a wall second; None: moved by the harness


@attrs.frozen
class TmfSimulatorSpec:
    """The TMF simulators (`Simulators`): data set, credentials, problem activity, faults."""

    inventory: Mapping[str, Any] = attrs.field(factory=dict)  # `InventorySpec` fields
    credentials: Mapping[str, tuple[str, str]] = attrs.field(factory=dict)
    activity: Mapping[str, Any] | None = None  # `ProblemActivity` fields
    faults: tuple[Fault, ...] = ()
    port: int = 0
    seed: int = 1


@attrs.frozen
class OsbSimulatorSpec:
    """The Telenet OSB ticketing service (`OsbService`)."""

    processing_delay: float = 0.0
    faults: tuple[Fault, ...] = ()
    port: int = 0
    seed: int = 1


@attrs.frozen
class ScriptSpec:
    """A named automation script (``[scripts.NAME]``): the function registered under that name."""

    name: str
    function: Callable[..., Any]


@attrs.frozen
class ElementSpec:
    """One ``[[elements]]`` entry, checked: its protocol, where it runs, its connection and first
    values (simulator references resolved at start), its alarm template and connector options."""

    name: str
    protocol: type[Protocol]
    connector: str  # the short name, or the module:Class path as written
    agent: int | None = None
    start: bool = True
    connection: Mapping[str, Any] | None = None  # Connection fields; port may be a SimulatorRef
    parameters: Mapping[str, Any] = attrs.field(factory=dict)  # values may be SimulatorRefs
    alarm_template: AlarmTemplate | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)  # the connector's own keys


@attrs.frozen
class SystemDescription:
    """What `load_system` read: checked through, ready for `start_system`."""

    path: Path
    agents: tuple[int, ...] = (1,)
    licences: frozenset[str] = LICENCES
    state: Path | None = None  # None: a temporary directory, deleted at the end
    autosave_seconds: float = 5.0
    clock: ClockSpec = ClockSpec()
    simulators: Mapping[str, TmfSimulatorSpec | OsbSimulatorSpec] = attrs.field(factory=dict)
    scripts: tuple[ScriptSpec, ...] = ()
    elements: tuple[ElementSpec, ...] = ()
    alarm_rules: tuple[tuple[AlarmRule, str], ...] = ()  # (rule, script name)


# -- connectors and scripts by short name --------------------------------------------------------


@attrs.frozen
class Connector:
    """A protocol a file names by a short name. `options` are the element keys of its own, read
    by `read_options`; `prepare` turns them into files in the element's folder and first
    parameter values before the element is created, `setup` into sets once it runs."""

    protocol: Callable[[Mapping[str, Any]], type[Protocol]]
    options: tuple[str, ...] = ()
    read_options: Callable[[_Reader, Key, Mapping[str, Any]], dict[str, Any]] | None = None
    prepare: Callable[[Mapping[str, Any], Path, Callable[[Any], Any]], dict[str, Any]] | None = None
    setup: Callable[[Element, Mapping[str, Any]], None] | None = None


def _ses_inventory(options: Mapping[str, Any]) -> type[Protocol]:
    from .elements.ses_inventory import SesInventoryManagement

    return SesInventoryManagement


def _ses_service_problems(options: Mapping[str, Any]) -> type[Protocol]:
    from .elements.ses_service_problems import SesServiceProblemManagement

    return SesServiceProblemManagement


def _tmf_service_problems(options: Mapping[str, Any]) -> type[Protocol]:
    from .elements.tm_forum_service_problems import TmForumServiceProblemManagement, tm_forum_protocol

    profile = options.get("profile")
    return TmForumServiceProblemManagement if profile is None else tm_forum_protocol(profile)


def _read_profile(reader: _Reader, key: Key, options: Mapping[str, Any]) -> dict[str, Any]:
    from .elements.tm_forum_service_problems import CustomerProfile, CustomerProfileError

    if "profile" not in options:
        return {}
    text = reader.typed(options["profile"], (*key, "profile"), str, "a path to a customer profile (JSON)")
    try:
        return {"profile": CustomerProfile.load(reader.relative(text))}
    except (OSError, CustomerProfileError) as error:
        raise reader.error((*key, "profile"), str(getattr(error, "strerror", None) or error)) from None


def _heartbeat_receiver(options: Mapping[str, Any]) -> type[Protocol]:
    from .elements.heartbeat_receiver import GenericDynamicHeartbeatReceiver

    return GenericDynamicHeartbeatReceiver


def _topology_database(options: Mapping[str, Any]) -> type[Protocol]:
    from .elements.telenet.topology_database import TelenetTopologyDatabase

    return TelenetTopologyDatabase


def _read_topology(reader: _Reader, key: Key, options: Mapping[str, Any]) -> dict[str, Any]:
    if "topology" not in options:
        return {}
    topology = reader.table(options["topology"], (*key, "topology"))
    for address, details in topology.items():
        reader.typed(details, (*key, "topology", address), str, "the network path details (text)")
    return {"topology": dict(topology)}


def _write_topology(options: Mapping[str, Any], folder: Path, resolve: Callable[[Any], Any]) -> dict[str, Any]:
    """The topology, as the provisioning system would drop it, in the folder the element reads."""
    from .elements.telenet.topology_database import ADDRESS_FIELD, PATH_DETAILS_FIELD

    if "topology" not in options:
        return {}
    provisioning = folder / "provisioning"
    provisioning.mkdir(parents=True, exist_ok=True)
    with (provisioning / "topology.csv").open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow((ADDRESS_FIELD, PATH_DETAILS_FIELD))
        writer.writerows(options["topology"].items())
    return {"Provisioning Folder": str(provisioning)}


def _ticket_gateway(options: Mapping[str, Any]) -> type[Protocol]:
    from .elements.telenet.ticket_gateway import TelenetTicketGateway

    return TelenetTicketGateway


def _ticket_client(options: Mapping[str, Any]) -> type[Protocol]:
    from .elements.telenet.ticket_client import TelenetTicketClient

    return TelenetTicketClient


_SERVICE_KEYS = ("name", "host", "port", "path", "description")


def _read_services(reader: _Reader, key: Key, options: Mapping[str, Any]) -> dict[str, Any]:
    services = []
    if "services" in options:
        entries = reader.typed(options["services"], (*key, "services"), list, "an array of services ({ name, host, port, path, description })")
        for index, entry in enumerate(entries):
            where = (*key, "services", index)
            entry = reader.table(entry, where, _SERVICE_KEYS)
            reader.require(entry, where, ("name", "port"))
            services.append({
                "name": reader.typed(entry["name"], (*where, "name"), str, "a service name"),
                "host": reader.typed(entry.get("host", "127.0.0.1"), (*where, "host"), str, "a host name or address"),
                "port": reader.port(entry["port"], (*where, "port")),
                "path": reader.typed(entry.get("path", "/osb/TicketingService"), (*where, "path"), str, "an HTTP path"),
                "description": reader.typed(entry.get("description", ""), (*where, "description"), str, "text"),
            })  # fmt: skip
    read: dict[str, Any] = {"services": services}
    if "service" in options:
        service = reader.typed(options["service"], (*key, "service"), str, "the name of one of the services")
        if service not in {entry["name"] for entry in services}:
            raise reader.error((*key, "service"), f"{service!r} is not one of the services given here ({', '.join(e['name'] for e in services) or 'none'})")
        read["service"] = service
    return read


def _write_services(options: Mapping[str, Any], folder: Path, resolve: Callable[[Any], Any]) -> dict[str, Any]:
    """The services written to the CSV file the element imports (its table changes only so)."""
    from .elements.telenet.service_info import ServiceInfo, write_service_csv

    if not options.get("services"):
        return {}
    path = folder / "services.csv"
    folder.mkdir(parents=True, exist_ok=True)
    write_service_csv(path, [ServiceInfo(s["name"], s["host"], resolve(s["port"]), s["path"], s["description"]) for s in options["services"]])
    return {"CSV File Path": str(path)}


def _import_services(element: Element, options: Mapping[str, Any]) -> None:
    """Import CSV pressed and the service selected, as a person does on the Connection Details page."""
    if not options.get("services"):
        return
    element.set("Import CSV", 1, raise_on_failure=True)
    if "service" in options:
        element.set("Service Selection", options["service"], raise_on_failure=True)


CONNECTORS: Mapping[str, Connector] = {
    "ses-inventory": Connector(_ses_inventory),
    "ses-service-problems": Connector(_ses_service_problems),
    "tmf-service-problems": Connector(_tmf_service_problems, ("profile",), _read_profile),
    "heartbeat-receiver": Connector(_heartbeat_receiver),
    "telenet-topology-database": Connector(_topology_database, ("topology",), _read_topology, prepare=_write_topology),
    "telenet-ticket-gateway": Connector(_ticket_gateway),
    "telenet-ticket-client": Connector(_ticket_client, ("services", "service"), _read_services, _write_services, _import_services),
}
"""The connectors by the short names a system file gives them (``protocol = "ses-inventory"``)."""


def _telenet_ticket_flow(reader: _Reader, key: Key, settings: Mapping[str, Any]) -> Callable[..., Any]:
    from .elements.telenet.flow import FlowSettings, ticket_flow_script

    fields = {field.name: field for field in attrs.fields(FlowSettings)}
    settings = reader.table(settings, key, tuple(fields))
    try:
        return ticket_flow_script(FlowSettings(**settings))
    except (TypeError, ValueError) as error:
        raise reader.error(key, str(error)) from None


SCRIPTS: Mapping[str, Callable[[_Reader, Key, Mapping[str, Any]], Callable[..., Any]]] = {
    "telenet-ticket-flow": _telenet_ticket_flow,
}
"""Scripts a file registers by a short name, with their settings (``settings = {...}``)."""


def _builtin_templates() -> dict[str, AlarmTemplate]:
    from .elements.heartbeat_receiver import HEARTBEAT_ALARMS

    return {HEARTBEAT_ALARMS.name: HEARTBEAT_ALARMS}


# -- reading ----------------------------------------------------------------------------------------

_TOP = ("system", "clock", "simulators", "alarm_templates", "scripts", "elements", "alarm_rules")
_SYSTEM = ("agents", "licences", "state", "autosave_seconds")
_CLOCK = ("kind", "start", "speed")
_TMF = ("port", "seed", "inventory", "credentials", "activity", "faults")
_OSB = ("port", "seed", "processing_delay", "faults")
_ELEMENT = ("name", "protocol", "agent", "start", "connection", "parameters", "alarm_template")
_CONNECTION = ("host", "port", "bus_address", "username", "password", "scheme", "timeout")
_RULE = ("script", "element", "protocol", "parameter", "min_severity", "kinds")
_TEMPLATE_ENTRY = ("high", "low", "discrete")


class _Reader:
    """Checks values against what they should be, raising the one `SystemFileError` that names
    the line and the key."""

    def __init__(self, path: Path, lines: KeyLines) -> None:
        self.path = path
        self.lines = lines

    def error(self, key: Key, reason: str) -> SystemFileError:
        return SystemFileError(self.path, self.lines.line_of(key), key_text(key), reason)

    def relative(self, text: str) -> Path:
        """A path written in the file: relative ones from the file's folder."""
        return (self.path.parent / Path(text).expanduser()).resolve()

    def table(self, value: Any, key: Key, allowed: Sequence[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, not {_shown(value)}")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    raise self.error((*key, name), f"unknown key{_did_you_mean(name, allowed)} (keys here: {', '.join(allowed)})")
        return value

    def require(self, table: Mapping[str, Any], key: Key, names: Sequence[str]) -> None:
        for name in names:
            if name not in table:
                raise self.error(key, f"{name!r} is missing")

    def typed(self, value: Any, key: Key, kind: type | tuple[type, ...], what: str) -> Any:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise self.error(key, f"must be {what}, not {_shown(value)}")
        return value

    def number(self, value: Any, key: Key, what: str, low: float, high: float = math.inf) -> float:
        self.typed(value, key, (int, float), what)
        if not (low <= value <= high):
            raise self.error(key, f"must be {what}, not {value!r}")
        return float(value)

    def port(self, value: Any, key: Key, *, free: bool = False) -> int | SimulatorRef:
        if isinstance(value, dict):
            return self.simulator_ref(value, key, allow_path=False)
        low = 0 if free else 1
        what = "a port from 0 (any free one) to 65535" if free else 'a port from 1 to 65535, or { simulator = "NAME" }'
        self.typed(value, key, int, what)
        if not low <= value <= 65535:
            raise self.error(key, f"must be {what}, not {value}")
        return int(value)

    def simulator_ref(self, value: dict[str, Any], key: Key, *, allow_path: bool = True) -> SimulatorRef:
        self.table(value, key, ("simulator", "path") if allow_path else ("simulator",))
        self.require(value, key, ("simulator",))
        name = self.typed(value["simulator"], (*key, "simulator"), str, f"a simulator's name ({', '.join(SIMULATOR_KINDS)})")
        path = self.typed(value.get("path", ""), (*key, "path"), str, "an HTTP path")
        if path and not path.startswith("/"):
            raise self.error((*key, "path"), f"an HTTP path starts with '/', not {path!r}")
        return SimulatorRef(name, path)


def _shown(value: Any) -> str:
    kind = {bool: "a boolean", int: "a whole number", float: "a number", str: "text", list: "an array", dict: "a table"}
    name = kind.get(type(value), type(value).__name__)
    shown = repr(value) if not isinstance(value, (list, dict)) else ""
    return f"{name} {shown}".strip()


def _did_you_mean(name: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def load_system(path: str | Path) -> SystemDescription:
    """Read and check a system file; a mistake is one `SystemFileError` naming the line and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SystemFileError(path, 0, "", f"cannot be read: {getattr(error, 'strerror', None) or error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = getattr(error, "lineno", None) or _line_in_message(str(error), text)
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(error)) or "not TOML"
        raise SystemFileError(path, line, "", f"not valid TOML: {reason}") from None
    return _read(data, _Reader(path, KeyLines(text)))


def _line_in_message(message: str, text: str) -> int:
    """tomllib (before 3.14) says where only in its message: a line, or the end of the document."""
    found = re.search(r"line (\d+)", message)
    if found:
        return int(found.group(1))
    return len(text.splitlines()) if "end of document" in message else 0


def _read(data: dict[str, Any], reader: _Reader) -> SystemDescription:
    reader.table(data, (), _TOP)
    system = reader.table(data.get("system", {}), ("system",), _SYSTEM)
    agents = tuple(_agents(reader, system))
    licences = frozenset(_licences(reader, system))
    state = None
    if "state" in system:
        state = reader.relative(reader.typed(system["state"], ("system", "state"), str, "a folder (relative to this file)"))
    autosave = reader.number(system.get("autosave_seconds", 5.0), ("system", "autosave_seconds"), "a number of seconds above 0", 1e-3)
    clock = _clock(reader, reader.table(data.get("clock", {}), ("clock",), _CLOCK))
    simulators = _simulators(reader, reader.table(data.get("simulators", {}), ("simulators",), SIMULATOR_KINDS), clock)
    templates = _builtin_templates()
    for name, entries in reader.table(data.get("alarm_templates", {}), ("alarm_templates",)).items():
        templates[name] = _template(reader, ("alarm_templates", name), name, entries)
    scripts = tuple(_script(reader, ("scripts", name), name, entry) for name, entry in reader.table(data.get("scripts", {}), ("scripts",)).items())
    elements = _elements(reader, data.get("elements", []), agents, templates, simulators)
    script_names = {script.name for script in scripts}
    rules = tuple(_rule(reader, ("alarm_rules", index), entry, script_names) for index, entry in enumerate(_array(reader, data, "alarm_rules")))
    return SystemDescription(reader.path.resolve(), agents, licences, state, autosave, clock, simulators, scripts, elements, rules)


def _array(reader: _Reader, data: Mapping[str, Any], name: str) -> list[Any]:
    return reader.typed(data.get(name, []), (name,), list, f"an array of tables ([[{name}]])")


def _agents(reader: _Reader, system: Mapping[str, Any]) -> list[int]:
    agents = reader.typed(system.get("agents", [1]), ("system", "agents"), list, "an array of agent ids")
    if not agents:
        raise reader.error(("system", "agents"), "a DataMiner System needs at least one agent id")
    for index, agent in enumerate(agents):
        reader.number(agent, ("system", "agents", index), "an agent id from 1", 1)
        reader.typed(agent, ("system", "agents", index), int, "an agent id from 1")
    if len(set(agents)) < len(agents):
        raise reader.error(("system", "agents"), f"an agent id is given twice in {agents}")
    return agents


def _licences(reader: _Reader, system: Mapping[str, Any]) -> list[str]:
    licences = reader.typed(system.get("licences", sorted(LICENCES)), ("system", "licences"), list, "an array of licence names")
    for index, licence in enumerate(licences):
        if licence not in LICENCES:
            hint = _did_you_mean(str(licence), sorted(LICENCES))
            raise reader.error(("system", "licences", index), f"{licence!r} is not a DataMiner licence{hint} (licences: {', '.join(sorted(LICENCES))})")
    return licences


def _clock(reader: _Reader, clock: Mapping[str, Any]) -> ClockSpec:
    kind = reader.typed(clock.get("kind", "real"), ("clock", "kind"), str, '"real" or "virtual"')
    if kind not in ("real", "virtual"):
        raise reader.error(("clock", "kind"), f'must be "real" or "virtual", not {kind!r}{_did_you_mean(kind, ("real", "virtual"))}')
    if kind == "real":
        for key in ("start", "speed"):
            if key in clock:
                raise reader.error(("clock", key), 'is for a virtual clock (kind = "virtual"); the real clock is the wall clock')
        return ClockSpec()
    start = None
    if "start" in clock:
        value = clock["start"]
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                raise reader.error(("clock", "start"), "a start needs its offset (2026-01-01T00:00:00Z), or epoch seconds")
            start = value.timestamp()
        else:
            start = reader.number(value, ("clock", "start"), "a date and time with its offset, or epoch seconds", 0)
    speed = None
    if "speed" in clock:
        speed = reader.number(clock["speed"], ("clock", "speed"), "simulated seconds a wall second, above 0 and at most 10,000,000", 1e-9, 1e7)
    return ClockSpec("virtual", start, speed)


def _faults(reader: _Reader, key: Key, entries: Any, api_default: str | None) -> tuple[Fault, ...]:
    faults = []
    for index, entry in enumerate(reader.typed(entries, key, list, "an array of fault tables")):
        entry = reader.table(entry, (*key, index))
        allowed = tuple(field.name for field in attrs.fields(Fault))
        reader.table(entry, (*key, index), allowed)
        values = {name: (set(value) if isinstance(value, list) and name == "pages" else value) for name, value in entry.items()}
        if api_default and "api" not in values:
            values["api"] = api_default
        try:
            faults.append(Fault.from_json(values))
        except (TypeError, ValueError) as error:
            named = next((name for name in entry if name in str(error)), None)
            raise reader.error((*key, index, named) if named else (*key, index), str(error)) from None
    return tuple(faults)


def _simulators(reader: _Reader, tables: Mapping[str, Any], clock: ClockSpec) -> dict[str, TmfSimulatorSpec | OsbSimulatorSpec]:
    started: dict[str, TmfSimulatorSpec | OsbSimulatorSpec] = {}
    if "tmf" in tables:
        key: Key = ("simulators", "tmf")
        tmf = reader.table(tables["tmf"], key, _TMF)
        inventory = reader.table(tmf.get("inventory", {}), (*key, "inventory"), tuple(f.name for f in attrs.fields(InventorySpec)))
        try:
            InventorySpec(**inventory)
        except (TypeError, ValueError) as error:
            named = next((name for name in inventory if name in str(error)), None)
            raise reader.error((*key, "inventory", named) if named else (*key, "inventory"), str(error)) from None
        credentials = {}
        apis = ("tmf638", "tmf639", "tmf656", "tmf642")
        for api, login in reader.table(tmf.get("credentials", {}), (*key, "credentials"), apis).items():
            login = reader.table(login, (*key, "credentials", api), ("username", "password"))
            reader.require(login, (*key, "credentials", api), ("username",))
            credentials[api] = (
                reader.typed(login["username"], (*key, "credentials", api, "username"), str, "a user name"),
                reader.typed(login.get("password", ""), (*key, "credentials", api, "password"), str, "a password"),
            )
        activity = None
        if "activity" in tmf:
            activity = reader.table(tmf["activity"], (*key, "activity"), tuple(f.name for f in attrs.fields(ProblemActivity)))
            try:
                ProblemActivity(**activity)
            except (TypeError, ValueError) as error:
                named = next((name for name in activity if name in str(error)), None)
                raise reader.error((*key, "activity", named) if named else (*key, "activity"), str(error)) from None
        started["tmf"] = TmfSimulatorSpec(
            inventory, credentials, activity, _faults(reader, (*key, "faults"), tmf.get("faults", []), None),
            port=int(reader.port(tmf.get("port", 0), (*key, "port"), free=True)),
            seed=int(reader.typed(tmf.get("seed", 1), (*key, "seed"), int, "a whole number")),
        )  # fmt: skip
    if "osb" in tables:
        key = ("simulators", "osb")
        osb = reader.table(tables["osb"], key, _OSB)
        started["osb"] = OsbSimulatorSpec(
            reader.number(osb.get("processing_delay", 0.0), (*key, "processing_delay"), "seconds from 0 to 86,400", 0, 86_400),
            _faults(reader, (*key, "faults"), osb.get("faults", []), "osb"),
            port=int(reader.port(osb.get("port", 0), (*key, "port"), free=True)),
            seed=int(reader.typed(osb.get("seed", 1), (*key, "seed"), int, "a whole number")),
        )  # fmt: skip
    return started


def _severity(reader: _Reader, value: Any, key: Key) -> Severity:
    names = [severity.label for severity in Severity if severity is not Severity.NORMAL]
    text = reader.typed(value, key, str, f"a severity ({', '.join(names)})")
    try:
        severity = Severity.from_label(text)
    except ValueError:
        severity = Severity.NORMAL
    if severity is Severity.NORMAL:
        raise reader.error(key, f"{text!r} is not a severity{_did_you_mean(text.capitalize(), names)} (severities: {', '.join(names)})")
    return severity


def _template(reader: _Reader, key: Key, name: str, entries: Any) -> AlarmTemplate:
    monitors: dict[str | int, Thresholds | DiscreteSeverities] = {}
    keys: dict[str | int, str] = {}  # each parameter's key as written: "7" and "07" both name 7
    for parameter, entry in reader.table(entries, key).items():
        where = (*key, parameter)
        ref = _parameter_ref(parameter)
        if ref in keys:
            raise reader.error(where, f"names parameter {ref!r}, already named by {keys[ref]!r}")
        keys[ref] = parameter
        entry = reader.table(entry, where, _TEMPLATE_ENTRY)
        if "discrete" in entry:
            if len(entry) > 1:
                raise reader.error(where, "takes either high/low limits or discrete values, not both")
            values = reader.table(entry["discrete"], (*where, "discrete"))
            monitors[ref] = DiscreteSeverities({v: _severity(reader, s, (*where, "discrete", v)) for v, s in values.items()})
            continue
        limits = {}
        for side in ("high", "low"):
            table = reader.table(entry.get(side, {}), (*where, side))
            limits[side] = {
                _severity(reader, s, (*where, side, s)): reader.number(limit, (*where, side, s), "a finite number", -math.inf) for s, limit in table.items()
            }
        monitors[ref] = Thresholds(high=limits["high"], low=limits["low"])
    for ref, monitor in monitors.items():
        problem = monitor.problem()  # said at the parameter's own line
        if problem:
            raise reader.error((*key, keys[ref]), problem)
    try:
        return AlarmTemplate(name, monitors)
    except DmemuError as error:
        raise reader.error(key, str(error)) from None


def _parameter_ref(text: str) -> str | int:
    """A parameter named in a key: digits are its id."""
    return int(text) if text.isdigit() else text


def _script(reader: _Reader, key: Key, name: str, entry: Any) -> ScriptSpec:
    entry = reader.table(entry, key, ("script", "settings"))
    reader.require(entry, key, ("script",))
    kind = reader.typed(entry["script"], (*key, "script"), str, 'a script\'s short name or "module:function"')
    if kind in SCRIPTS:
        settings = entry.get("settings", {})
        return ScriptSpec(name, SCRIPTS[kind](reader, (*key, "settings"), settings))
    if ":" not in kind:
        raise reader.error((*key, "script"), f"{kind!r} is not a known script{_did_you_mean(kind, tuple(SCRIPTS))} (known: {', '.join(SCRIPTS)}; or \"module:function\")")
    if "settings" in entry:
        raise reader.error((*key, "settings"), f"a script given as module:function ({kind}) takes no settings")
    function = _imported(reader, (*key, "script"), kind)
    if not callable(function):
        raise reader.error((*key, "script"), f"{kind} is not a function taking (ctx, input)")
    return ScriptSpec(name, function)


@contextmanager
def _importing_from(folder: Path) -> Iterator[None]:
    """Modules imported meanwhile are looked for in `folder` first (a file's own protocols)."""
    import_path = sys.path.copy()
    sys.path.insert(0, str(folder.resolve()))
    try:
        yield
    finally:
        sys.path[:] = import_path


def _imported(reader: _Reader, key: Key, path: str) -> Any:
    """``module:name`` imported from the file's folder (first) and the import path."""
    module_name, _, name = path.partition(":")
    try:
        with _importing_from(reader.path.parent):
            module = importlib.import_module(module_name)
    except ImportError as error:
        raise reader.error(key, f"cannot import {module_name!r}: {error}") from None
    try:
        found: Any = module
        for part in name.split("."):
            found = getattr(found, part)
    except AttributeError:
        raise reader.error(key, f"module {module_name!r} has no {name!r}") from None
    return found


def _protocol(reader: _Reader, key: Key, text: str, options: Mapping[str, Any]) -> type[Protocol]:
    if text in CONNECTORS:
        return CONNECTORS[text].protocol(options)
    if ":" not in text:
        hint = _did_you_mean(text, tuple(CONNECTORS))
        raise reader.error(key, f"{text!r} is not a known connector{hint} (known: {', '.join(CONNECTORS)}; or \"module:Class\")")
    found = _imported(reader, key, text)
    if not (isinstance(found, type) and issubclass(found, Protocol)):
        raise reader.error(key, f"{text} is not a Protocol class")
    return found


def _elements(
    reader: _Reader, entries: Any, agents: tuple[int, ...], templates: Mapping[str, AlarmTemplate], simulators: Mapping[str, Any]
) -> tuple[ElementSpec, ...]:
    elements: list[ElementSpec] = []
    names: set[str] = set()
    for index, entry in enumerate(reader.typed(entries, ("elements",), list, "an array of tables ([[elements]])")):
        key: Key = ("elements", index)
        entry = reader.table(entry, key)
        reader.require(entry, key, ("name", "protocol"))
        connector_name = reader.typed(entry["protocol"], (*key, "protocol"), str, 'a connector\'s short name or "module:Class"')
        connector = CONNECTORS.get(connector_name)
        own = connector.options if connector else ()
        reader.table(entry, key, (*_ELEMENT, *own))
        name = reader.typed(entry["name"], (*key, "name"), str, "an element name")
        if not name.strip():
            raise reader.error((*key, "name"), "an element name is not empty")
        if name in names:
            raise reader.error((*key, "name"), f"an element named {name!r} is given before; element names are unique in a DMS")
        names.add(name)
        options = connector.read_options(reader, key, entry) if connector and connector.read_options else {}
        protocol = _protocol(reader, (*key, "protocol"), connector_name, options)
        agent = None
        if "agent" in entry:
            agent = reader.typed(entry["agent"], (*key, "agent"), int, "an agent id")
            if agent not in agents:
                raise reader.error((*key, "agent"), f"agent {agent} is not one of the system's agents {list(agents)}")
        connection = _connection(reader, (*key, "connection"), entry["connection"], simulators, protocol) if "connection" in entry else None
        parameters = _parameters(reader, (*key, "parameters"), entry.get("parameters", {}), protocol, simulators)
        template = None
        if "alarm_template" in entry:
            template_name = reader.typed(entry["alarm_template"], (*key, "alarm_template"), str, "an alarm template's name")
            if template_name not in templates:
                hint = _did_you_mean(template_name, tuple(templates))
                raise reader.error((*key, "alarm_template"), f"no alarm template {template_name!r}{hint} (templates: {', '.join(templates)})")
            template = templates[template_name]
            problem = template_problem(template, protocol)
            if problem:
                raise reader.error((*key, "alarm_template"), problem)
        for option in own:
            if isinstance(options.get(option), SimulatorRef):
                _check_simulator(reader, (*key, option), options[option], simulators)
        for index_, service in enumerate(options.get("services", ())):
            if isinstance(service["port"], SimulatorRef):
                _check_simulator(reader, (*key, "services", index_, "port"), service["port"], simulators)
        start = reader.typed(entry.get("start", True), (*key, "start"), bool, "true or false")
        elements.append(ElementSpec(name, protocol, connector_name, agent, start, connection, parameters, template, options))
    return tuple(elements)


def _check_simulator(reader: _Reader, key: Key, ref: SimulatorRef, simulators: Mapping[str, Any]) -> None:
    if ref.simulator not in simulators:
        started = ", ".join(simulators) or "none"
        hint = _did_you_mean(ref.simulator, tuple(simulators))
        raise reader.error((*key, "simulator"), f"no simulator {ref.simulator!r} is started{hint} (started: {started}; [simulators.{ref.simulator}] starts it)")


def _connection(reader: _Reader, key: Key, value: Any, simulators: Mapping[str, Any], protocol: type[Protocol]) -> dict[str, Any]:
    table = reader.table(value, key, _CONNECTION)
    connection = dict(table)
    takes_credentials = protocol.connection is not None and protocol.connection.credentials
    for name in ("username", "password"):
        if name in table and not takes_credentials:
            raise reader.error((*key, name), f"{protocol.name} takes no credentials on its connection")
    if "port" in table:
        connection["port"] = reader.port(table["port"], (*key, "port"))
        if isinstance(connection["port"], SimulatorRef):
            _check_simulator(reader, (*key, "port"), connection["port"], simulators)
    try:  # the engine's own checks, a simulator's port stood in for by any port
        Connection(**{name: (1 if isinstance(v, SimulatorRef) else v) for name, v in connection.items()})
    except ConnectionSettingError as error:
        raise reader.error((*key, error.field), str(error)) from None
    except TypeError as error:
        raise reader.error(key, str(error)) from None
    return connection


def _parameters(reader: _Reader, key: Key, value: Any, protocol: type[Protocol], simulators: Mapping[str, Any]) -> dict[str, Any]:
    parameters = {}
    targets = protocol.model.write_targets
    named: dict[int, str] = {}  # parameter id -> its key as written: by id and by name is naming it twice
    for name, entry in reader.table(value, key).items():
        where = (*key, name)
        ref = _parameter_ref(name)
        if isinstance(entry, dict):
            entry = reader.simulator_ref(entry, where)
            _check_simulator(reader, where, entry, simulators)
        target = targets.get(ref)
        if target is None:
            known = [p.name for p in protocol.model.parameters.values() if (p.id in targets)]
            exists = ref in protocol.model.by_name or ref in protocol.model.parameters
            reason = f"{protocol.name} has no write parameter {name!r}" if not exists else f"{name!r} is not a write parameter of {protocol.name}, so it takes no first value"
            raise reader.error(where, f"{reason}{_did_you_mean(name, known)}")
        if target[0].id in named:
            raise reader.error(where, f"names parameter {target[0].id} ({target[0].name}), already named by {named[target[0].id]!r}")
        named[target[0].id] = name
        try:
            target[1]("http://127.0.0.1:1" + entry.path if isinstance(entry, SimulatorRef) else entry)
        except DmemuError as error:
            raise reader.error(where, str(error)) from None
        parameters[name] = entry
    return parameters


def _rule(reader: _Reader, key: Key, entry: Any, scripts: set[str]) -> tuple[AlarmRule, str]:
    entry = reader.table(entry, key, _RULE)
    reader.require(entry, key, ("script",))
    script = reader.typed(entry["script"], (*key, "script"), str, "a script's name")
    if script not in scripts:
        raise reader.error((*key, "script"), f"no script {script!r} is registered here{_did_you_mean(script, sorted(scripts))} ([scripts.NAME] registers one)")
    criteria: dict[str, Any] = {}
    for name in ("element", "protocol"):
        if name in entry:
            criteria[name] = reader.typed(entry[name], (*key, name), str, f"an {name} name")
    if "parameter" in entry:
        criteria["parameter"] = reader.typed(entry["parameter"], (*key, "parameter"), (str, int), "a parameter's name or id")
    if "min_severity" in entry:
        criteria["min_severity"] = _severity(reader, entry["min_severity"], (*key, "min_severity"))
    if "kinds" in entry:
        kinds = [kind.value for kind in AlarmEventKind]
        for index, kind in enumerate(reader.typed(entry["kinds"], (*key, "kinds"), list, f"an array of event kinds ({', '.join(kinds)})")):
            if kind not in kinds:
                raise reader.error((*key, "kinds", index), f"{kind!r} is not an alarm event kind{_did_you_mean(str(kind), kinds)} ({', '.join(kinds)})")
        criteria["kinds"] = entry["kinds"]
    return AlarmRule(**criteria), script


# -- running ------------------------------------------------------------------------------------


class SimulatorGroup:
    """The started simulators as one, for the console (`dms.serve(simulators=...)`): their
    faults (each added to the simulator of its api), and their request logs merged in time order."""

    def __init__(self, simulators: Mapping[str, Any]) -> None:
        """`simulators`: the started ones by their file name (``tmf``, ``osb``)."""
        self.members = dict(simulators)
        self.faults = _GroupFaults(self)

    @property
    def base_url(self) -> str:
        """Each member's base URL, comma-separated (the console shows them as one line)."""
        return ", ".join(member.base_url for member in self.members.values())

    @property
    def apis(self) -> tuple[str, ...]:
        return tuple(api for member in self.members.values() for api in member.apis)

    def requests(self, api: str | None = None) -> list[RequestRecord]:
        """Every member's logged requests (only those of `api` when given), oldest first."""
        records = [record for member in self.members.values() for record in member.faults.requests(api)]
        return sorted(records, key=lambda record: record.time)


class _GroupFaults:
    def __init__(self, group: SimulatorGroup) -> None:
        self._group = group

    def _member(self, fault: Fault) -> Any:
        members = self._group.members
        return members.get("osb") if fault.api == "osb" and "osb" in members else members.get("tmf") or next(iter(members.values()))

    @property
    def faults(self) -> list[Fault]:
        return [fault for member in self._group.members.values() for fault in member.faults.faults]

    def add(self, *faults: Fault) -> None:
        for fault in faults:
            self._member(fault).faults.add(fault)

    def clear(self) -> None:
        for member in self._group.members.values():
            member.faults.clear()

    def clear_log(self) -> None:
        for member in self._group.members.values():
            member.faults.clear_log()


@attrs.define
class RunningSystem:
    """A started system: its DMS, clock, simulators by name (``tmf``, ``osb``) and elements."""

    description: SystemDescription
    dms: DataMinerSystem
    clock: Clock
    simulators: dict[str, Any]
    state: Path

    @property
    def simulator_group(self) -> SimulatorGroup | None:
        """The simulators as one, for `dms.serve` (None when none started)."""
        return SimulatorGroup(self.simulators) if self.simulators else None

    def serve(self, port: int = 0, *, host: str = "127.0.0.1", token: str | None = None) -> Any:
        """The DMS served with its simulators (`DataMinerSystem.serve`)."""
        return self.dms.serve(port, host=host, token=token, simulators=self.simulator_group)


@contextmanager
def start_system(description: SystemDescription, *, clock: Clock | None = None) -> Iterator[RunningSystem]:
    """Start what `description` says, in order: the simulators, the DMS, the scripts, the elements
    (in file order, each with its connector's setup and its alarm template) and the alarm rules;
    everything stops at the end of the ``with``. `clock` replaces the file's (a harness's own)."""
    with ExitStack() as stack:
        state = description.state
        if state is None:
            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dmemu-system-")))
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DmemuError(f"cannot use state directory {state}: {error.strerror or error}") from None
        kept = _kept_elements(description, state)
        paced = clock is None and description.clock.speed is not None  # a harness's own clock is its to move
        clock = clock or _clock_of(description.clock)
        simulators = {name: stack.enter_context(_started(name, spec, clock)) for name, spec in description.simulators.items()}
        with _importing_from(description.path.parent):  # kept elements of the file's own protocols
            dms = DataMinerSystem(state, clock, agent_ids=description.agents, licences=description.licences, autosave_seconds=description.autosave_seconds)
        stack.callback(dms.close)
        for script in description.scripts:
            dms.automation.register(script.name, script.function, replace=True)

        def resolve(value: Any) -> Any:
            if isinstance(value, SimulatorRef):
                return simulators[value.simulator].port
            return value

        files = state / "system-file"
        for spec in description.elements:
            if spec.name in kept:
                element = dms.element(spec.name)
            else:
                element = _create(dms, spec, simulators, resolve, files)
            if spec.alarm_template is not None:
                dms.alarms.assign_template(element, spec.alarm_template)
        for rule, script in description.alarm_rules:
            dms.automation.on_alarm(rule, script)
        if paced and isinstance(clock, VirtualClock):
            stack.enter_context(_paced(clock, description.clock.speed or 1.0))
        yield RunningSystem(description, dms, clock, simulators, state)


def _clock_of(spec: ClockSpec) -> Clock:
    return RealClock() if spec.kind == "real" else VirtualClock(spec.start)


def _kept_elements(description: SystemDescription, state: Path) -> set[str]:
    """The file's elements a kept state directory holds already: picked up as saved."""
    if not (state / REGISTRY_FILE).exists():
        return set()
    saved = {record["name"]: record["protocol"] for record in existing_registry(state).load()}
    for spec in description.elements:
        if spec.name in saved and saved[spec.name] != protocol_path(spec.protocol):
            raise DmemuError(
                f"{description.path}: element {spec.name!r} is of protocol {protocol_path(spec.protocol)} there, "
                f"but {state} keeps it as {saved[spec.name]}; give another state directory, or the element another name"
            )
    return {spec.name for spec in description.elements if spec.name in saved}


@contextmanager
def _started(name: str, spec: TmfSimulatorSpec | OsbSimulatorSpec, clock: Clock) -> Iterator[Any]:
    try:
        if isinstance(spec, TmfSimulatorSpec):
            # On the wall clock the inventory's day 0 is now, as `dmemu simulate` has it.
            inventory = dict(spec.inventory)
            if isinstance(clock, RealClock):
                inventory.setdefault("start", time.time())
            else:
                inventory.setdefault("start", clock.now())
            activity = ProblemActivity(**spec.activity) if spec.activity is not None else None
            simulator: Any = Simulators(
                InventorySpec(**inventory), credentials=spec.credentials, now=clock.now, port=spec.port, seed=spec.seed, activity=activity
            )
        else:
            simulator = OsbService(port=spec.port, clock=clock.now, processing_delay=spec.processing_delay, seed=spec.seed)
    except OSError as error:
        raise DmemuError(f"simulators.{name}: cannot listen on 127.0.0.1:{spec.port}: {error.strerror or error}") from None
    simulator.faults.add(*spec.faults)
    with simulator:
        yield simulator


def _create(dms: DataMinerSystem, spec: ElementSpec, simulators: Mapping[str, Any], resolve: Callable[[Any], Any], files: Path) -> Element:
    connection = None
    if spec.connection is not None:
        connection = Connection(**{name: resolve(value) for name, value in spec.connection.items()})
    connector = CONNECTORS.get(spec.connector)
    parameters: dict[str, Any] = {}
    if connector is not None and connector.prepare is not None:
        parameters.update(connector.prepare(spec.options, files / _folder_name(spec.name), resolve))
    parameters.update(
        (name, simulators[value.simulator].base_url + value.path if isinstance(value, SimulatorRef) else value)
        for name, value in spec.parameters.items()
    )
    element = dms.create_element(spec.protocol, spec.name, connection=connection, agent_id=spec.agent, parameters=parameters, start=False)
    if connector is not None and connector.setup is not None:
        element.start()  # the setup's sets run the element's QActions
        connector.setup(element, spec.options)
        if not spec.start:
            element.stop()
    elif spec.start:
        element.start()
    return element


def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "element"


@contextmanager
def _paced(clock: VirtualClock, speed: float) -> Iterator[None]:
    """A virtual clock moving `speed` simulated seconds a wall second, on a thread of its own."""
    stopping = threading.Event()

    def run() -> None:
        last = time.monotonic()
        while not stopping.wait(VIRTUAL_STEP):
            now = time.monotonic()
            clock.advance((now - last) * speed)
            last = now

    thread = threading.Thread(target=run, name="dmemu-virtual-clock", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join()


__all__ = [
    "CONNECTORS",
    "SCRIPTS",
    "ClockSpec",
    "ElementSpec",
    "KeyLines",
    "RunningSystem",
    "SimulatorGroup",
    "SimulatorRef",
    "SystemDescription",
    "SystemFileError",
    "load_system",
    "start_system",
]
