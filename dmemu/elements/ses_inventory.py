"""SES Inventory Management: services, carriers and resources from TMF638 and TMF639.

What the connector's help page says, and where it lives here:

* **HTTP connection** (IP address/host, IP port 443, bus address ``BypassProxy``): TMF638 is
  reached on the element's own host and port, under *TMF 638 API Base Path* (the SES path by
  default); TMF639 at the full *TMF 639 Endpoint*. Both use basic authentication with their own
  username and password (Configuration page). Passwords are write-only.
* **Initial cache buildup** at start-up (`initial_cache_buildup`): every page of Services,
  Carriers (services filtered by ``@type=element``) and Resources, *Records Per Page* (40) at a
  time, until all pages are read. With *Active Items Only* (the help page's ``status=1``) only
  active services and available resources are asked for.
* **Periodic cache updates** (`periodic_cache_update`): every *Cache Update Frequency* seconds
  (3600 to 432000), the items updated in the last 24 hours (``updatedDaysAgo=0``) are fetched and
  their rows updated in place. When a type's last good read is older than a day (a failing API,
  a long frequency), its window widens to cover the gap, so nothing changed in between is missed.
* **Later versions' rules** (REFERENCE §3): items with an empty id are skipped and counted; the
  first of duplicate ids is kept; a 504 on a page skips that page and goes on; any other failure
  ends that type for this cycle and moves on to the next type. A type whose buildup was cut short
  is built again on the next cycle. Tables keep their content on any failure: rows only go away
  when a complete buildup no longer lists them (a restart or *Rebuild Cache*), or when an update
  reports an item no longer active while *Active Items Only* is on.
* **Servers that page their own way**: the offset moves by the items a page brought (a server
  may answer fewer than asked); an empty page ends the list; a page that brings no new id (a
  server ignoring the offset), an empty page before the announced total, or a listing with
  nothing at all where the table holds rows leaves the type incomplete, so nothing is removed on
  the strength of it. A stop of the element ends a cycle between two pages.

The General page shows the cache progress per type and the communication status per API.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import requests

from dmemu.protocol import (
    Button,
    Column,
    DateTime,
    Discrete,
    DisplayKey,
    ElementState,
    HttpConnection,
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

DAY = 86_400
DEFAULT_TMF638_BASE_PATH = "/gstm/dataminer/tmf/api/v1/tmf638"
DEFAULT_TMF639_ENDPOINT = "https://mintapi.dbb-oa-dev.az.ses/gstm/dataminer/tmf/api/v1/tmf639"
MAX_CONSECUTIVE_SKIPPED_PAGES = 5  # 504s in a row before the total is known: the type gives up
MAX_PAGES_PER_TYPE = 100_000  # 4,000,000 items at 40 a page: a server listing more is not believed
UPDATE_WINDOW_MARGIN = 300  # seconds added to an update window: stamps to the second, clocks apart
_DIGITS = re.compile(r"[0-9]+")  # str.isdigit also takes "²", which int() refuses
_ERROR_TEXT_LIMIT = 200  # characters of an error answer kept in the status and the log

# Cache phases (parameter "Cache Phase")
IDLE, BUILDING, UPDATING = 0, 1, 2
# Communication states (column "Communication Status" of the API Status table)
NOT_POLLED, OK, AUTHENTICATION_FAILED, TIMEOUT, CONNECTION_FAILED, HTTP_ERROR, INVALID_RESPONSE = range(7)
# Cache states per type (column "Cache State" of the Cache Progress table)
EMPTY, INCOMPLETE, COMPLETE = 0, 1, 2

TMF638, TMF639 = "TMF 638", "TMF 639"
SERVICES, CARRIERS, RESOURCES = "Services", "Carriers", "Resources"


# --------------------------------------------------------------------------------------------
# Showing nested TMF values in one cell


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _list(value: Any) -> list[Any]:
    """A TMF list attribute as a list: v4 has some as single objects (a resource's place)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _reference(value: Any) -> str:
    """A reference as its name, else its id: what a person recognises."""
    if isinstance(value, dict):
        return _text(value.get("name") or value.get("id") or value.get("href"))
    return _text(value)


def _roles(values: Any) -> str:
    """Related parties and places: ``role: name; ...``."""
    shown = []
    for value in _list(values):
        name = _reference(value)
        role = value.get("role") if isinstance(value, dict) else None
        shown.append(f"{role}: {name}" if role else name)
    return "; ".join(shown)


def _references(values: Any) -> str:
    return "; ".join(_reference(value) for value in _list(values))


def _characteristics(values: Any) -> str:
    """Characteristics: ``name=value; ...``."""
    shown = []
    for value in _list(values):
        if isinstance(value, dict):
            shown.append(f"{_text(value.get('name'))}={_text(value.get('value'))}")
        else:
            shown.append(_text(value))
    return "; ".join(shown)


def _specification(value: Any) -> str:
    """A specification: its name, with the version when there is one."""
    if not isinstance(value, dict):
        return _text(value)
    name, version = _reference(value), value.get("version")
    return f"{name} v{_text(version)}" if version not in (None, "") else name


def _relationships(values: Any) -> str:
    """Resource relationships: ``relationshipType: resource; ...``."""
    shown = []
    for value in _list(values):
        if isinstance(value, dict):
            kind, target = value.get("relationshipType"), _reference(value.get("resource"))
            shown.append(f"{kind}: {target}" if kind else target)
        else:
            shown.append(_text(value))
    return "; ".join(shown)


def service_row(item: Mapping[str, Any]) -> list[str]:
    """A Services table row (cells in column order) from a TMF638 service."""
    get = item.get
    return [
        get("id"), _text(get("name")), _text(get("description")), _text(get("state")),
        _text(get("serviceType") or get("@type")), _text(get("startDate")), _text(get("endDate")),
        _text(get("lastUpdate")), _roles(get("relatedParty")), _roles(get("place")),
        _specification(get("serviceSpecification")), _references(get("supportingResource")),
    ]  # fmt: skip


def carrier_row(item: Mapping[str, Any]) -> list[str]:
    """A Carriers table row from a TMF638 service of ``@type`` element."""
    get = item.get
    return [
        get("id"), _text(get("name")), _text(get("description")), _text(get("state")),
        _text(get("serviceType") or get("@type")), _text(get("serviceDate")), _text(get("lastUpdate")),
        _characteristics(get("serviceCharacteristic")), _references(get("supportingService")),
    ]  # fmt: skip


def resource_row(item: Mapping[str, Any]) -> list[str]:
    """A Resources table row from a TMF639 resource."""
    get = item.get
    return [
        get("id"), _text(get("name")), _text(get("description")), _text(get("resourceStatus")),
        _text(get("@type") or get("category")), _specification(get("resourceSpecification")),
        _characteristics(get("resourceCharacteristic")), _roles(get("relatedParty")), _roles(get("place")),
        _relationships(get("resourceRelationship")),
    ]  # fmt: skip


def _service_is_active(item: Mapping[str, Any]) -> bool:
    return item.get("state") == "active"


def _resource_is_available(item: Mapping[str, Any]) -> bool:
    return item.get("resourceStatus") == "available"


def _is_carrier(item: Mapping[str, Any]) -> bool:
    return item.get("@type") == "element"


def _any_item(item: Mapping[str, Any]) -> bool:
    return True


def _not_carrier(item: Mapping[str, Any]) -> bool:
    return item.get("@type") != "element"


@attrs.frozen
class EntityType:
    """One of the three kinds of items the cache holds: where they come from and how they show."""

    name: str  # its table's name, and its row key in the Cache Progress table
    api: str  # the row key of the API Status table
    resource: str  # the collection under the API's base: "service" or "resource"
    query: Mapping[str, str]  # filters of every request for this type
    belongs: Callable[[Mapping[str, Any]], bool]  # whether an answered item is of this type
    active: Callable[[Mapping[str, Any]], bool]
    row: Callable[[Mapping[str, Any]], list[str]]


ENTITY_TYPES = (
    # The services list holds the carriers too; they are kept for the Carriers table.
    EntityType(SERVICES, TMF638, "service", {}, _not_carrier, _service_is_active, service_row),
    EntityType(CARRIERS, TMF638, "service", {"@type": "element"}, _is_carrier, _service_is_active, carrier_row),
    EntityType(RESOURCES, TMF639, "resource", {}, _any_item, _resource_is_available, resource_row),
)


# --------------------------------------------------------------------------------------------
# Talking to the APIs


class _TypeFailed(Exception):
    """This type cannot go on this cycle (the status and the log say why)."""


@attrs.define
class _Api:
    """Where one API is and how to log in, read from the Configuration page at the start of a cycle."""

    name: str
    url: str  # the collection's base, without the resource name
    auth: tuple[str, str] | None = attrs.field(repr=False)

    @classmethod
    def of(cls, protocol: QActionProtocol, name: str) -> _Api:
        if name == TMF638:
            base, user, password = (protocol.get_parameter(p) for p in ("TMF 638 API Base Path", "TMF 638 Username", "TMF 638 Password"))
            url = ("/" + (base or "").strip().strip("/")).rstrip("/")  # on the element's own host and port
        else:
            url, user, password = (protocol.get_parameter(p) for p in ("TMF 639 Endpoint", "TMF 639 Username", "TMF 639 Password"))
            url = (url or "").strip().rstrip("/")
        return cls(name, url, (user, password or "") if user else None)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[: _ERROR_TEXT_LIMIT - 3] + "..."


class _Poller:
    """Reads pages for one cycle, keeping the API Status and Cache Progress tables current."""

    def __init__(self, protocol: QActionProtocol) -> None:
        self.protocol = protocol
        self.started = protocol.now()
        self.page_size = int(protocol.get_parameter("Records Per Page"))
        self.active_only = protocol.get_parameter("Active Items Only") == 1
        self.apis = {name: _Api.of(protocol, name) for name in (TMF638, TMF639)}
        # Per type, ids listed more than once at the last buildup: the fingerprints of the later copies.
        self.duplicates: dict[str, dict[str, set[str]]] = {
            name: {key: set(prints) for key, prints in by_id.items()}
            for name, by_id in json.loads(protocol.get_parameter("Duplicate Records") or "{}").items()
        }

    def save_duplicates(self) -> None:
        saved = {name: {key: sorted(prints) for key, prints in by_id.items()} for name, by_id in self.duplicates.items() if by_id}
        self.protocol.set_parameter("Duplicate Records", json.dumps(saved, sort_keys=True))

    # -- communication status ---------------------------------------------------------------

    def _status(self, api: str, state: int, http_status: int, error: str) -> None:
        """One API's row of the API Status table; `http_status` 0 when no answer came."""
        now = self.protocol.now()
        # A None cell keeps its value: the last success stays until the next one.
        row = [api, state, http_status, self.protocol.masked(error), now if state == OK else None, now]
        self.protocol.fill_array_no_delete("API Status", [row])

    def _fail(self, entity: EntityType, state: int, http_status: int, error: str) -> _TypeFailed:
        self._status(entity.api, state, http_status, error)
        self.protocol.log(f"{entity.name}: {error}", LogType.ERROR)
        return _TypeFailed(error)

    def get_page(self, entity: EntityType, offset: int, extra: Mapping[str, str]) -> tuple[list[Any], int | None] | None:
        """(items, total) of one page; None when the page answered 504 and is skipped.

        Raises `_TypeFailed` for anything else that went wrong."""
        api = self.apis[entity.api]
        params = {**entity.query, **extra, "offset": str(offset), "limit": str(self.page_size)}
        where = f"{entity.api} {entity.resource} offset {offset}"
        try:
            response = self.protocol.http.get(f"{api.url}/{entity.resource}", params=params, auth=api.auth)
        except requests.Timeout:
            raise self._fail(entity, TIMEOUT, 0, f"{where}: no answer within {self.protocol.http.timeout:g} s") from None
        except requests.RequestException as error:
            reason = getattr(error.args[0], "reason", None) if error.args else None  # what urllib3 saw underneath
            raise self._fail(entity, CONNECTION_FAILED, 0, f"{where}: connection failed: {_cut(str(reason or error))}") from None
        status = response.status_code
        if status == 504:
            self._status(entity.api, HTTP_ERROR, status, f"{where}: 504 Gateway Timeout; page skipped")
            self.protocol.log(f"{entity.name}: {where} answered 504 Gateway Timeout; page skipped", LogType.ERROR)
            return None
        if status in (401, 403):
            raise self._fail(entity, AUTHENTICATION_FAILED, status, f"{where}: {status} {response.reason}: check the {entity.api} username and password")
        if status not in (200, 206):
            raise self._fail(entity, HTTP_ERROR, status, f"{where}: {status} {response.reason}: {_cut(response.text)}")
        try:
            items = response.json()
        except ValueError as error:
            raise self._fail(entity, INVALID_RESPONSE, status, f"{where}: malformed JSON ({error})") from None
        if not isinstance(items, list):
            raise self._fail(entity, INVALID_RESPONSE, status, f"{where}: the answer is a JSON {type(items).__name__}, not a list")
        total_header = response.headers.get("X-Total-Count", "").strip()
        self._status(entity.api, OK, status, "")
        return items, int(total_header) if _DIGITS.fullmatch(total_header) else None

    # -- reading a type ---------------------------------------------------------------------

    def read(self, entity: EntityType, *, rebuild: bool, extra: Mapping[str, str]) -> bool:
        """Read every page of one type into its table; True when every page was read.

        The offset moves by the items each page brought (a server may answer fewer than asked),
        and an empty page ends the list. A page that brings no new id (a server ignoring the
        offset), an empty page before the announced total, or a stop of the element ends the
        type as incomplete: only a complete buildup removes rows."""
        protocol, table = self.protocol, entity.name
        progress = _Progress(protocol, entity.name, rebuild)
        seen: set[str] = set()
        known_duplicates = self.duplicates.get(entity.name, {})
        if rebuild:
            known_duplicates = self.duplicates[entity.name] = {}  # learnt again from this listing
        offset, total, skipped_in_a_row, complete = 0, None, 0, True
        for _ in range(MAX_PAGES_PER_TYPE):
            if total is not None and offset >= total:
                break
            if not _still_wanted(protocol):
                progress.failed("the element is stopping")
                return False
            try:
                page = self.get_page(entity, offset, extra)
            except _TypeFailed as error:
                progress.failed(str(error))
                return False
            if page is None:
                complete = False
                skipped_in_a_row += 1
                progress.page_skipped()
                if total is None and skipped_in_a_row >= MAX_CONSECUTIVE_SKIPPED_PAGES:
                    progress.failed(f"{skipped_in_a_row} pages in a row answered 504; giving up until the next cycle")
                    return False
                offset += self.page_size  # what the skipped page would have held
                continue
            items, page_total = page
            total = page_total if page_total is not None else total
            skipped_in_a_row = 0
            if not items:
                if total is not None and offset < total:
                    complete = False
                    protocol.log(f"{entity.name}: an empty page at offset {offset} of {total} ends the list early", LogType.ERROR)
                break
            rows, gone, empty, duplicates, new = [], [], 0, 0, 0
            for item in items:
                if not isinstance(item, dict):
                    empty += 1  # not an item at all: it has no id either
                    continue
                key = item.get("id")
                if not key or not isinstance(key, str):
                    empty += 1
                    continue
                if key in seen:
                    duplicates += 1
                    if rebuild:
                        known_duplicates.setdefault(key, set()).add(_fingerprint(item))
                    continue
                if key in known_duplicates and _fingerprint(item) in known_duplicates[key]:
                    duplicates += 1  # a later copy of an id, listed alone by an update: the first stays
                    continue
                seen.add(key)
                new += 1
                if not entity.belongs(item):
                    continue
                if not self.active_only or entity.active(item):
                    rows.append(entity.row(item))
                else:
                    gone.append(key)  # no longer active (an update), or a server that ignored status=1
            if rows:
                protocol.fill_array_no_delete(table, rows)
            if gone:
                protocol.delete_row(table, gone)
            progress.page_read(len(items), len(rows), empty, duplicates)
            if not new and duplicates:
                complete = False
                protocol.log(f"{entity.name}: the page at offset {offset} brought no new id; the server may ignore offset", LogType.ERROR)
                break
            offset += len(items)
        else:
            complete = False
            protocol.log(f"{entity.name}: stopped after {MAX_PAGES_PER_TYPE} pages", LogType.ERROR)
        if rebuild and complete and not seen and protocol.row_count(table):
            # Everything gone at once is far likelier a broken server than an empty inventory.
            complete = False
            protocol.log(f"{entity.name}: the server listed nothing; the {protocol.row_count(table)} rows are kept", LogType.ERROR)
        if rebuild and complete:
            stale = [key for key in protocol.get_keys(table) if key not in seen]
            if stale:
                protocol.delete_row(table, stale)
                protocol.log(f"{entity.name}: {len(stale)} rows no longer listed upstream were removed")
        progress.finished(complete, self.started)
        return complete


def _fingerprint(item: Mapping[str, Any]) -> str:
    """A short digest of a record's content: tells a known later copy of an id from a real change."""
    text = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _still_wanted(protocol: QActionProtocol) -> bool:
    """False once the element is stopping or its DMS closing: a long cycle gives up between pages."""
    element = protocol.element
    return element.state is ElementState.ACTIVE and not element.dms.closed


class _Progress:
    """One type's row of the Cache Progress table, counted as pages come in."""

    def __init__(self, protocol: QActionProtocol, name: str, rebuild: bool) -> None:
        self.protocol = protocol
        self.name = name
        self.rebuild = rebuild
        self.pages = self.items = self.kept = self.empty = self.duplicates = self.skipped = 0
        protocol.set_parameter("Cache Type In Progress", name)
        self._write(result="Building" if rebuild else "Updating")

    def _write(
        self,
        *,
        state: int | None = None,
        buildup: float | None = None,
        update: float | None = None,
        result: str | None = None,
        good_start: float | None = None,
    ) -> None:
        # Cells given as None keep their value (FillArrayNoDelete), so a row is always written whole.
        row = [
            self.name, state, self.pages, self.items, self.kept, self.empty, self.duplicates, self.skipped, buildup, update,
            result, good_start,
        ]  # fmt: skip
        self.protocol.fill_array_no_delete("Cache Progress", [row])

    def page_read(self, items: int, kept: int, empty: int, duplicates: int) -> None:
        self.pages += 1
        self.items += items
        self.kept += kept
        self.empty += empty
        self.duplicates += duplicates
        self._write()

    def page_skipped(self) -> None:
        self.skipped += 1
        self._write()

    def failed(self, error: str) -> None:
        self._write(state=INCOMPLETE if self.rebuild else None, result=f"Failed: {error}")

    def finished(self, complete: bool, started: float) -> None:
        """The read ended; a complete one is where this type's next update window starts."""
        now = self.protocol.now()
        skipped = f", {self.skipped} pages skipped" if self.skipped else ""
        result = f"OK{skipped}" if complete else f"Incomplete{skipped}"
        good_start = started if complete else None
        if self.rebuild:
            state = COMPLETE if complete else INCOMPLETE
            self._write(state=state, buildup=now if complete else None, result=result, good_start=good_start)
        else:
            self._write(update=now, result=result, good_start=good_start)


# --------------------------------------------------------------------------------------------
# QActions


def _cycle(protocol: QActionProtocol, *, rebuild_all: bool) -> None:
    """One cache cycle over the three types: a buildup for each type that needs one, else an update.

    Whatever happens, the cycle ends idle with the next update scheduled."""
    poller = _Poller(protocol)
    started = poller.started
    all_good, rebuilt = True, False
    try:
        for entity in ENTITY_TYPES:
            state, good_start = (protocol.get_cell("Cache Progress", entity.name, column) for column in ("Cache State", "Last Good Read Start"))
            rebuild = rebuild_all or state != COMPLETE or good_start is None
            rebuilt |= rebuild
            protocol.set_parameter("Cache Phase", BUILDING if rebuild else UPDATING)
            if rebuild:
                extra = {"status": "1"} if poller.active_only else {}
            else:  # since this type's last good read, in whole days ("N" asks for N+1 days)
                window_days = max(0, -(-int(started - good_start + UPDATE_WINDOW_MARGIN) // DAY) - 1)
                extra = {"updatedDaysAgo": str(window_days)}
            try:
                all_good &= poller.read(entity, rebuild=rebuild, extra=extra)
            except Exception as error:  # a bug or an answer nobody foresaw: this type fails, the others go on
                all_good = False
                protocol.log(f"{entity.name}: the cache cycle failed: {type(error).__name__}: {error}", LogType.ERROR)
                _Progress(protocol, entity.name, rebuild).failed(f"{type(error).__name__}: {error}")
        poller.save_duplicates()
    finally:
        now = protocol.now()
        protocol.set_parameters({"Cache Phase": IDLE, "Cache Type In Progress": "", "Last Cache Cycle": now, "Last Cycle Start": started})
        protocol.set_parameter("Next Cache Update", started + protocol.get_parameter("Cache Update Frequency"))
    if all_good and rebuilt:
        protocol.set_parameter("Last Completed Buildup", now)


def initial_cache_buildup(protocol: QActionProtocol) -> None:
    """QAction 1: at start-up (and on Rebuild Cache), every page of every type."""
    _cycle(protocol, rebuild_all=True)


def periodic_cache_update(protocol: QActionProtocol) -> None:
    """QAction 2: items updated lately (and a buildup for any type still incomplete)."""
    _cycle(protocol, rebuild_all=False)


def check_cache_timer(protocol: QActionProtocol) -> None:
    """QAction 3, every minute: start a periodic update when it is due."""
    due = protocol.get_parameter("Next Cache Update")
    if due is None or protocol.now() >= due:  # None: no cycle ever finished; try now
        periodic_cache_update(protocol)


def frequency_changed(protocol: QActionProtocol) -> None:
    """QAction 4: a new Cache Update Frequency counts from the last cycle's start."""
    last = protocol.get_parameter("Last Cycle Start")
    if last is not None:
        protocol.set_parameter("Next Cache Update", last + protocol.get_parameter("Cache Update Frequency"))


# --------------------------------------------------------------------------------------------
# The protocol


def _text_column(pid: int, name: str, *, key: bool = False) -> Column:
    return Column(pid, name, String(), key=key)


class SesInventoryManagement(Protocol):
    name = "SES Inventory Management"
    version = "1.0.0.2"  # 1.0.0.2: timestamps are DateTime (epoch seconds), not text
    description = "TMF638 services and carriers and TMF639 resources, cached by paginated polling."
    connection = HttpConnection(default_port=443)
    pages = (
        Page("General", order=0),
        Page("Services", order=1),
        Page("Carriers", order=2),
        Page("Resources", order=3),
        Page("Configuration", order=4),
    )
    parameters = (
        # General: the cache
        Parameter(10, "Cache Phase", Discrete({IDLE: "Idle", BUILDING: "Building", UPDATING: "Updating"}), default=IDLE, page="General"),
        Parameter(11, "Cache Type In Progress", String(), default="", page="General"),
        Parameter(12, "Last Completed Buildup", DateTime(), save=True, page="General",
                  description="When every type was last read completely."),
        Parameter(13, "Last Cache Cycle", DateTime(), save=True, page="General"),
        Parameter(14, "Next Cache Update", DateTime(), save=True, description="When the next periodic update is due."),
        Parameter(15, "Duplicate Records", String(), default="", save=True,
                  description="Per type, ids listed more than once at the last buildup, with fingerprints of the later copies."),
        Parameter(16, "Last Cycle Start", DateTime(), save=True, description="When the last cycle began."),
        Parameter(20, "Refresh Cache", Button("Refresh"), write=True, page="General",
                  description="Fetch the items updated lately now, without waiting for the next update."),
        Parameter(21, "Rebuild Cache", Button("Rebuild"), write=True, page="General",
                  description="Read every page of every type again; rows no longer listed upstream are removed."),
        # Configuration
        Parameter(100, "TMF 638 API Base Path", String(), write=True, default=DEFAULT_TMF638_BASE_PATH, save=True, page="Configuration",
                  description="Path of the TMF638 API on the element's host and port."),
        Parameter(101, "TMF 638 Username", String(), write=True, default="", save=True, page="Configuration"),
        Parameter(102, "TMF 638 Password", String(secret=True), write=True, default="", save=True, page="Configuration"),
        Parameter(103, "TMF 639 Endpoint", String(), write=True, default=DEFAULT_TMF639_ENDPOINT, save=True, page="Configuration",
                  description="Full URL of the TMF639 API."),
        Parameter(104, "TMF 639 Username", String(), write=True, default="", save=True, page="Configuration"),
        Parameter(105, "TMF 639 Password", String(secret=True), write=True, default="", save=True, page="Configuration"),
        Parameter(106, "Cache Update Frequency", Number(3600, 432000, "s"), write=True, default=3600, save=True, page="Configuration"),
        Parameter(107, "Records Per Page", Number(1, 1000), write=True, default=40, save=True, page="Configuration"),
        Parameter(108, "Active Items Only", Discrete({0: "Disabled", 1: "Enabled"}), write=True, default=1, save=True, page="Configuration",
                  description="Ask only for active services and available resources (status=1)."),
    )  # fmt: skip
    tables = (
        Table(1000, "Services", save=True, page="Services", display_key=DisplayKey(("Name",)), columns=(
            _text_column(1001, "External ID", key=True), _text_column(1002, "Name"), _text_column(1003, "Description"),
            _text_column(1004, "Status"), _text_column(1005, "Type"), _text_column(1006, "Start Date"),
            _text_column(1007, "End Date"), _text_column(1008, "Last Update"), _text_column(1009, "Related Party"),
            _text_column(1010, "Location"), _text_column(1011, "Service Specification"), _text_column(1012, "Supporting Resources"),
        )),
        Table(1100, "Carriers", save=True, page="Carriers", display_key=DisplayKey(("Name",)), columns=(
            _text_column(1101, "External ID", key=True), _text_column(1102, "Name"), _text_column(1103, "Description"),
            _text_column(1104, "Status"), _text_column(1105, "Type"), _text_column(1106, "Creation Date"),
            _text_column(1107, "Last Update"), _text_column(1108, "Service Characteristics"), _text_column(1109, "Supporting Services"),
        )),
        Table(1200, "Resources", save=True, page="Resources", display_key=DisplayKey(("Name",)), columns=(
            _text_column(1201, "External ID", key=True), _text_column(1202, "Name"), _text_column(1203, "Description"),
            _text_column(1204, "Status"), _text_column(1205, "Type"), _text_column(1206, "Resource Specification"),
            _text_column(1207, "Resource Characteristics"), _text_column(1208, "Related Parties"), _text_column(1209, "Locations"),
            _text_column(1210, "Resource Relationships"),
        )),
        Table(300, "Cache Progress", save=True, page="General", columns=(
            _text_column(301, "Type", key=True),
            Column(302, "Cache State", Discrete({EMPTY: "Empty", INCOMPLETE: "Incomplete", COMPLETE: "Complete"})),
            Column(303, "Pages Read", Number(0)),
            Column(304, "Items Listed", Number(0),
                   description="Items the pages brought, including those another table keeps (carriers in the services list), "
                               "inactive ones, duplicates and empty ids."),
            Column(312, "Rows Kept", Number(0), description="Items written to this type's table by this read."),
            Column(305, "Empty IDs Skipped", Number(0)), Column(306, "Duplicate IDs Skipped", Number(0)),
            Column(307, "Pages Skipped", Number(0)), Column(308, "Last Complete Buildup", DateTime()),
            Column(309, "Last Update", DateTime()), _text_column(310, "Result"),
            Column(311, "Last Good Read Start", DateTime(),
                   description="When the last read of this type without failure began: its next update window starts there."),
        )),
        Table(400, "API Status", save=True, page="General", columns=(
            _text_column(401, "API", key=True),
            Column(402, "Communication Status", Discrete({
                NOT_POLLED: "Not Polled", OK: "OK", AUTHENTICATION_FAILED: "Authentication Failed", TIMEOUT: "Timeout",
                CONNECTION_FAILED: "Connection Failed", HTTP_ERROR: "HTTP Error", INVALID_RESPONSE: "Invalid Response",
            })),
            Column(403, "Last HTTP Status", Number(0, 999), description="0: no answer came"), _text_column(404, "Last Error"),
            Column(405, "Last Success", DateTime()), Column(406, "Last Attempt", DateTime()),
        )),
    )  # fmt: skip
    timers = (Timer(1, seconds=60, qactions=(3,), at_startup=False, name="Cache Update Check"),)
    qactions = (
        QAction(1, initial_cache_buildup, triggers=(21,), after_startup=True, name="Initial Cache Buildup"),
        QAction(2, periodic_cache_update, triggers=(20,), name="Periodic Cache Update"),
        QAction(3, check_cache_timer, name="Cache Update Check"),
        QAction(4, frequency_changed, triggers=(106,), name="Cache Update Frequency Changed"),
    )


__all__ = ["ENTITY_TYPES", "EntityType", "SesInventoryManagement", "carrier_row", "resource_row", "service_row"]
