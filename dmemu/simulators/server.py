"""The simulators' HTTP server: TMF638, TMF639 and TMF656 (v4 and SES paths) and SES TMF642.

One threaded server on 127.0.0.1 serves every API; `Simulators` starts it in-process::

    with Simulators(InventorySpec(services=500)) as sim:
        requests.get(sim.url("tmf638"), params={"limit": 40})

Accepted sockets get ``TCP_NODELAY``: without it, HTTP/1.1 keep-alive answers wait ~40 ms
for the client's delayed ACK (REFERENCE §5).
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from .clock import parse_snow
from .faults import Fault, FaultPlan, RequestRecord
from .inventory import DAY, Collection, Inventory, InventorySpec, iso_utc
from .problems import ServiceProblems
from .tmf import (
    ListQuery,
    TmfError,
    bad_request,
    merge_patch,
    non_negative_int,
    not_found,
    parse_list_query,
    select_fields,
)

TMF_PATHS = {
    "tmf638": "/tmf-api/serviceInventory/v4/service",
    "tmf639": "/tmf-api/resourceInventoryManagement/v4/resource",
    "tmf656": "/tmf-api/serviceProblemManagement/v4/serviceProblem",
}
SES_BASE = "/gstm/dataminer/tmf/api/v1"
SES_PATHS = {
    "tmf638": f"{SES_BASE}/tmf638/service",
    "tmf639": f"{SES_BASE}/tmf639/resource",
    "tmf656": f"{SES_BASE}/tmf656/serviceProblem",
    "tmf642": f"{SES_BASE}/tmf642/alarm",
}
INVENTORY_VENDOR_PARAMETERS = ("updatedDaysAgo", "status")
SNOW_PARAMETER = "sysparm_query"
MERGE_PATCH = "application/merge-patch+json"
UNKNOWN_API = "unknown"  # how the request log names requests to no API
_logger = logging.getLogger("dmemu.simulators")

# First-level attributes a list may filter on: the v4 definitions' properties, plus the
# extensions served here ("@type" on services, "lastUpdate" on inventory, the v3 time names).
FILTERABLE = {
    "tmf638": frozenset({
        "category", "description", "endDate", "feature", "hasStarted", "href", "id", "isBundle", "isServiceEnabled",
        "isStateful", "name", "note", "place", "relatedEntity", "relatedParty", "serviceCharacteristic", "serviceDate",
        "serviceOrderItem", "serviceRelationship", "serviceSpecification", "serviceType", "startDate", "startMode",
        "state", "supportingResource", "supportingService", "@type", "@baseType", "@schemaLocation", "lastUpdate",
    }),
    "tmf639": frozenset({
        "@baseType", "@schemaLocation", "@type", "activationFeature", "administrativeState", "attachment", "category",
        "description", "endOperatingDate", "href", "id", "name", "note", "operationalState", "place", "relatedParty",
        "resourceCharacteristic", "resourceRelationship", "resourceSpecification", "resourceStatus", "resourceVersion",
        "startOperatingDate", "usageState", "lastUpdate",
    }),
    "tmf656": frozenset({
        "@baseType", "@schemaLocation", "@type", "affectedLocation", "affectedNumberOfServices", "affectedResource",
        "affectedService", "category", "characteristic", "creationDate", "description", "externalIdentifier",
        "firstAlert", "href", "id", "impactImportanceFactor", "impactPattern", "lastUpdate", "name", "note",
        "originatingSystem", "originatorParty", "parentProblem", "priority", "problemEscalation", "reason",
        "relatedEntity", "relatedEvent", "relatedParty", "resolutionDate", "responsibleParty", "rootCauseResource",
        "rootCauseService", "slaViolation", "status", "statusChangeDate", "statusChangeReason", "trackingRecord",
        "troubleTicket", "underlyingAlarm", "underlyingProblem", "timeRaised", "timeChanged",
    }),
}
# The v4 enumerations: a filter asking for a value outside them is a mistake, not an empty answer.
ENUMERATIONS = {
    "tmf638": {"state": frozenset({"feasibilityChecked", "designed", "reserved", "inactive", "active", "terminated"})},
    "tmf639": {
        "administrativeState": frozenset({"locked", "unlocked", "shutdown"}),
        "operationalState": frozenset({"enable", "disable"}),
        "resourceStatus": frozenset({"standby", "alarm", "available", "reserved", "unknown", "suspended"}),
        "usageState": frozenset({"idle", "active", "busy"}),
    },
    "tmf656": {
        "status": frozenset({"acknowledged", "rejected", "pending", "held", "inProgress", "resolved", "cancelled", "closed"})
    },
}

# What the v4 specs let a client create with (required) and change (Service_Update, Resource_Update).
CREATE_REQUIRED = {"tmf638": ("state", "serviceSpecification"), "tmf639": ("name",)}
PATCHABLE = {
    "tmf638": frozenset({
        "category", "description", "endDate", "hasStarted", "isBundle", "isServiceEnabled", "isStateful", "name",
        "serviceType", "startDate", "startMode", "feature", "note", "place", "relatedEntity", "relatedParty",
        "serviceCharacteristic", "serviceOrderItem", "serviceRelationship", "serviceSpecification", "state",
        "supportingResource", "supportingService",
    }),
    "tmf639": frozenset({
        "category", "description", "endOperatingDate", "name", "resourceVersion", "startOperatingDate",
        "administrativeState", "attachment", "note", "operationalState", "place", "relatedParty",
        "resourceCharacteristic", "resourceRelationship", "resourceSpecification", "resourceStatus", "usageState",
        "@baseType", "@schemaLocation", "@type",
    }),
}


class EncodedItems(list[str]):
    """A page of items already encoded as compact JSON text: sent as the JSON array of them."""


class InventoryStore:
    """A generated collection plus what clients created, patched or deleted over it."""

    def __init__(
        self,
        source: Callable[[], Collection],
        now: Callable[[], float],
        patchable: frozenset[str],
        enumerations: Mapping[str, frozenset[str]],
    ) -> None:
        self._source = source
        self._now = now
        self._patchable = patchable
        self._enumerations = enumerations
        self._patched: dict[str, dict[str, Any]] = {}
        self._deleted: set[str] = set()
        self._created: list[dict[str, Any]] = []
        self._new_ids = itertools.count(1)
        self._lock = threading.RLock()  # each change is looked up, checked and stored as one step

    @property
    def edited(self) -> bool:
        return bool(self._patched or self._deleted or self._created)

    def get(self, item_id: str) -> dict[str, Any]:
        with self._lock:
            item = self._find(item_id)
        if item is None:
            raise not_found("item", item_id)
        return item

    def _find(self, item_id: str) -> dict[str, Any] | None:
        if item_id in self._deleted:
            return None
        item = self._patched.get(item_id) or next((c for c in self._created if c["id"] == item_id), None)
        return item or self._source().get(item_id)

    def listing(
        self, query: ListQuery, vendor: Mapping[str, str], status_filter: Callable[[dict[str, Any]], bool]
    ) -> tuple[int, list[dict[str, Any]] | EncodedItems]:
        """(total matches, the page) for a list query: items, or (a whole page of generated items) their JSON text."""
        collection = self._source()
        edited = self.edited
        remaining = []
        for term in query.filters:
            if term.path == ("@type",) and term.operator == "eq" and len(term.values) == 1 and not edited:
                collection = collection.of_type(term.values[0])  # served without a scan
            else:
                remaining.append(term)
        if "updatedDaysAgo" in vendor:
            days = non_negative_int("updatedDaysAgo", vendor["updatedDaysAgo"])
            threshold = self._now() - (days + 1) * DAY
            if not edited:  # edited items carry new times the generated view does not know
                collection = collection.updated_since(threshold)
            remaining_threshold: str | None = iso_utc(threshold)
        else:
            remaining_threshold = None
        status_wanted = "status" in vendor
        if not (remaining or status_wanted or edited):
            total = len(collection)
            stop = total if query.limit is None else min(total, query.offset + query.limit)
            if query.fields is None:  # sent whole: encoded as they are built, never held as dicts
                return total, EncodedItems(collection.json_slice(query.offset, stop))
            return total, [collection.at(i) for i in range(query.offset, stop)]

        def wanted(item: dict[str, Any]) -> bool:
            return (
                all(term.matches(item) for term in query.filters)
                and (remaining_threshold is None or item.get("lastUpdate", "") >= remaining_threshold)
                and (not status_wanted or status_filter(item))
            )

        matches = [item for item in self._overlay(collection) if wanted(item)]
        stop = len(matches) if query.limit is None else query.offset + query.limit
        return len(matches), matches[query.offset : stop]

    def _overlay(self, collection: Collection) -> Iterator[dict[str, Any]]:
        with self._lock:
            patched, deleted, created = dict(self._patched), set(self._deleted), list(self._created)
        for item in collection:
            if item.get("id") in deleted:
                continue
            yield patched.get(item.get("id"), item)
        yield from (item for item in created if item["id"] not in deleted)

    def create(self, body: Any, href_base: str, required: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the item is a JSON object")
        missing = [name for name in required if name not in body]
        if missing:
            raise bad_request(f"missing required attributes: {', '.join(missing)}")
        self._check_values(body)
        with self._lock:
            item_id = str(body.get("id") or f"NEW-{next(self._new_ids):07d}")
            if self._find(item_id) is not None:
                raise TmfError(409, "Conflict", f"an item with id {item_id!r} exists")
            item = {**body, "id": item_id, "href": f"{href_base}/{item_id}", "lastUpdate": iso_utc(self._now())}
            self._deleted.discard(item_id)  # the id of a deleted item may be used again
            self._created = [c for c in self._created if c["id"] != item_id]
            self._created.append(item)
            return item

    def patch(self, item_id: str, changes: Any) -> dict[str, Any]:
        if not isinstance(changes, dict):
            raise bad_request("a merge patch is a JSON object")
        forbidden = sorted(changes.keys() - self._patchable)
        if forbidden:
            raise bad_request(f"{', '.join(forbidden)} cannot be patched")
        self._check_values(changes)
        with self._lock:
            item = json.loads(json.dumps(self.get(item_id)))  # a deep copy to change
            merge_patch(item, changes)
            item["lastUpdate"] = iso_utc(self._now())
            created = next((i for i, c in enumerate(self._created) if c["id"] == item_id), None)
            if created is not None:
                self._created[created] = item
            else:
                self._patched[item_id] = item
            return item

    def delete(self, item_id: str) -> None:
        with self._lock:
            self.get(item_id)
            self._deleted.add(item_id)

    def _check_values(self, body: Mapping[str, Any]) -> None:
        """Enumerated attributes take the spec's values (answers must stay valid)."""
        for name, allowed in self._enumerations.items():
            value = body.get(name)
            if value is not None and value not in allowed:
                raise bad_request(f"{name} {value!r} is not one of {', '.join(sorted(allowed))}")


def _check_filters(api: str, query: ListQuery) -> None:
    """400 for a filter on an attribute the API does not have, or an enumerated value it never takes."""
    known, enumerations = FILTERABLE[api], ENUMERATIONS[api]
    for term in query.filters:
        name = term.path[0]
        if name not in known:
            raise bad_request(f"{name!r} is not an attribute of this API; filter on one of: {', '.join(sorted(known))}")
        allowed = enumerations.get(name)
        if allowed is not None and len(term.path) == 1 and term.operator == "eq":
            unknown = [value for value in term.values if value not in allowed]
            if unknown:
                raise bad_request(f"{name}={','.join(unknown)}: not a {name} value ({', '.join(sorted(allowed))})")
    if query.fields is not None:
        unknown_fields = [name for name in query.fields if name not in known]
        if unknown_fields:
            raise bad_request(f"fields: {', '.join(unknown_fields)} is not an attribute of this API")


def _service_active(item: dict[str, Any]) -> bool:
    return item.get("state") == "active"


def _resource_available(item: dict[str, Any]) -> bool:
    return item.get("resourceStatus") == "available"


class Simulators:
    """The simulated remote systems on one loopback server, started in-process.

    `credentials` maps an API ("tmf638", "tmf639", "tmf656", "tmf642") to (user, password):
    those APIs then want HTTP basic auth. `now` is the simulated time (epoch seconds); pass
    the DMS clock's ``now`` to keep the two in step.
    """

    def __init__(
        self,
        spec: InventorySpec | None = None,
        *,
        credentials: Mapping[str, tuple[str, str]] | None = None,
        now: Callable[[], float] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 1,
    ) -> None:
        self.spec = spec or InventorySpec()
        self.now = now or time.time
        self.inventory = Inventory(self.spec, self.now)
        self.credentials = dict(credentials or {})
        unknown = set(self.credentials) - {*TMF_PATHS, *SES_PATHS}
        if unknown:
            raise ValueError(f"credentials for unknown APIs: {', '.join(sorted(unknown))}")
        self.faults = FaultPlan(seed)
        self.services = InventoryStore(lambda: self.inventory.services, self.now, PATCHABLE["tmf638"], ENUMERATIONS["tmf638"])
        self.resources = InventoryStore(lambda: self.inventory.resources, self.now, PATCHABLE["tmf639"], ENUMERATIONS["tmf639"])
        self.problems = ServiceProblems(self.now)
        self.alarms: list[dict[str, Any]] = []
        self._server = _Server((host, port), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, api: str, *, ses: bool = False) -> str:
        """The collection URL of an API, at its TMF v4 path or (``ses=True``) its SES path."""
        paths = SES_PATHS if ses else TMF_PATHS
        if api not in paths:
            raise KeyError(f"no {'SES' if ses else 'TMF v4'} path for {api!r}; APIs: {', '.join(paths)}")
        return self.base_url + paths[api]

    def start(self) -> Simulators:
        if self._thread is None:
            # A short poll interval: `stop()` waits for the serving loop to look up.
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="dmemu-simulators", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Simulators:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def requests(self, api: str | None = None) -> list[RequestRecord]:
        return self.faults.requests(api)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], simulators: Simulators) -> None:
        self.simulators = simulators
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # the request log is kept in FaultPlan
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._refuse_method("PUT")

    def do_HEAD(self) -> None:
        self._refuse_method("HEAD")

    def do_OPTIONS(self) -> None:
        self._refuse_method("OPTIONS")

    def _refuse_method(self, method: str) -> None:
        """The TMF APIs here take GET, POST, PATCH and DELETE: anything else is a JSON 405."""
        self._read_body()
        error = TmfError(405, "Method Not Allowed", f"{method} is not supported; use GET, POST, PATCH or DELETE")
        headers = {"Allow": "GET, POST, PATCH, DELETE"}
        status, payload = _error_answer(error, headers)
        self._send_json(status, None if method == "HEAD" else payload, headers, None)

    # -- dispatch ---------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        sim = self.server.simulators
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qsl(parts.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except TmfError as error:
            self.close_connection = True  # the stream cannot be trusted past a bad length
            self._send_error(error)
            return
        if path.startswith("/_admin"):
            self._answer_admin(method, path, body)
            return
        route = _route(path)
        if route is None:  # logged too: a client calling a wrong path is worth seeing
            number = sim.faults.next_number(UNKNOWN_API)
            sim.faults.record(RequestRecord(number, UNKNOWN_API, method, self.path, 404, None))
            self._send_error(TmfError(404, "Not Found", f"no API at {path}"))
            return
        api, collection_path, item_id, ses = route
        number = sim.faults.next_number(api)
        fault = sim.faults.fault_for(api, method, number, _page(query))
        if fault is not None and fault.latency:
            time.sleep(fault.latency)
        headers: dict[str, str] = {}
        if fault is not None and fault.kind == "drop":
            status, payload = 0, None
        elif fault is not None and fault.kind == "status":
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            status, payload = _error_answer(TmfError(fault.status, "Simulated Fault", f"fault on request {number}"), headers)
        else:
            try:
                self._check_auth(api)
                status, payload, headers = _answer(sim, method, api, collection_path, item_id, ses, query, body, self.headers)
            except TmfError as error:
                status, payload = _error_answer(error, headers)
                fault = None  # a refused request is answered whole
            except Exception as error:  # a simulator bug still answers, as a TMF 500, and is logged
                _logger.exception("simulator failed on %s %s", method, self.path)
                status, payload = _error_answer(TmfError(500, "Internal Server Error", f"{type(error).__name__}: {error}"), headers)
                fault = None
        # Logged before answering, so a client that has its answer finds it in the log.
        sim.faults.record(RequestRecord(number, api, method, self.path, status, fault.kind if fault else None))
        if status == 0:
            self.close_connection = True  # dropped: no answer at all
            return
        self._send_json(status, payload, headers, fault)

    def _read_body(self) -> bytes:
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit():
            raise bad_request(f"Content-Length {text!r} is not a length")
        length = int(text)
        return self.rfile.read(length) if length else b""

    def _check_auth(self, api: str) -> None:
        wanted = self.server.simulators.credentials.get(api)
        if wanted is None:
            return
        header = self.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{wanted[0]}:{wanted[1]}".encode()).decode()
        if header != expected:
            raise TmfError(401, "Unauthorized", f"{api} wants HTTP basic authentication", code="401")

    # -- answers ----------------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str], fault: Fault | None) -> int:
        if payload is None:
            data = b""
        elif isinstance(payload, EncodedItems):
            data = f"[{','.join(payload)}]".encode()
        else:
            data = json.dumps(payload, separators=(",", ":")).encode()
        if fault is not None and fault.kind == "malformed":
            data = data[: max(1, len(data) // 2)] + b"<<not json"
        declared = len(data)
        if fault is not None and fault.kind == "truncated":
            data = data[: len(data) // 2]
            self.close_connection = True
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json;charset=utf-8")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(data)
        return status

    def _send_error(self, error: TmfError) -> int:
        headers: dict[str, str] = {}
        status, payload = _error_answer(error, headers)
        return self._send_json(status, payload, headers, None)

    def _answer_admin(self, method: str, path: str, body: bytes) -> None:
        sim = self.server.simulators
        try:
            if path == "/_admin/health" and method == "GET":
                self._send_json(200, {"status": "ok"}, {}, None)
            elif path == "/_admin/faults" and method == "GET":
                self._send_json(200, [f.to_json() for f in sim.faults.faults], {}, None)
            elif path == "/_admin/faults" and method == "POST":
                data = _json(body)
                try:
                    faults = [Fault.from_json(entry) for entry in (data if isinstance(data, list) else [data])]
                except (TypeError, ValueError) as error:
                    raise bad_request(f"bad fault: {error}") from None
                sim.faults.add(*faults)
                self._send_json(201, [f.to_json() for f in sim.faults.faults], {}, None)
            elif path == "/_admin/faults" and method == "DELETE":
                sim.faults.clear()
                self._send_json(204, None, {}, None)
            elif path == "/_admin/requests" and method == "GET":
                self._send_json(200, [attrs.asdict(r) for r in sim.faults.requests()], {}, None)
            else:
                raise TmfError(404, "Not Found", f"no admin endpoint {method} {path}")
        except TmfError as error:
            self._send_error(error)


def _error_answer(error: TmfError, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """(status, TMF error body) of an error; adds the headers it needs."""
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="dmemu simulators"'
    return error.status, error.body()


def _route(path: str) -> tuple[str, str, str | None, bool] | None:
    """(api, collection path, item id or None, SES path?) for a request path."""
    for ses, paths in ((False, TMF_PATHS), (True, SES_PATHS)):
        for api, collection in paths.items():
            if path == collection:
                return api, collection, None, ses
            if path.startswith(collection + "/"):
                item_id = path[len(collection) + 1 :]
                if item_id and "/" not in item_id:
                    return api, collection, item_id, ses
    return None


def _page(query: list[tuple[str, str]]) -> int | None:
    values = dict(query)
    try:
        offset, limit = int(values.get("offset", 0)), int(values["limit"])
    except (KeyError, ValueError):
        return None
    return offset // limit if limit > 0 else None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as error:
        raise bad_request(f"the body is not JSON: {error}") from None


def _answer(
    sim: Simulators,
    method: str,
    api: str,
    collection_path: str,
    item_id: str | None,
    ses: bool,
    query: list[tuple[str, str]],
    body: bytes,
    headers: Mapping[str, str],
) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON payload, extra headers) of one API request."""
    if api == "tmf642":
        if method != "POST" or item_id is not None:
            raise TmfError(405, "Method Not Allowed", "the SES alarm API takes POST on its collection")
        alarm = _json(body)
        if not isinstance(alarm, dict):
            raise bad_request("an alarm is a JSON object")
        alarm = {**alarm, "id": f"AL-{len(sim.alarms) + 1:07d}"}
        alarm["href"] = f"{collection_path}/{alarm['id']}"
        sim.alarms.append(alarm)
        return 201, alarm, {"Location": alarm["href"]}
    if api == "tmf656":
        return _answer_problems(sim, method, item_id, ses, query, body, headers, collection_path)
    store = sim.services if api == "tmf638" else sim.resources
    status_filter = _service_active if api == "tmf638" else _resource_available
    if item_id is None:
        if method == "GET":
            list_query, vendor = parse_list_query(query, vendor=INVENTORY_VENDOR_PARAMETERS)
            _check_filters(api, list_query)
            if "status" in vendor and vendor["status"] not in ("0", "1"):
                raise bad_request(f"status={vendor['status']!r}: use 1 for active items only")
            if vendor.get("status") == "0":
                vendor = {k: v for k, v in vendor.items() if k != "status"}
            total, page = store.listing(list_query, vendor, status_filter)
            return _list_answer(list_query, total, page)
        if method == "POST":
            item = store.create(_json(body), collection_path, CREATE_REQUIRED[api])
            return 201, item, {"Location": item["href"]}
        raise TmfError(405, "Method Not Allowed", f"{method} on a collection")
    return _answer_item(store, method, item_id, query, body, headers)


def _answer_problems(
    sim: Simulators,
    method: str,
    item_id: str | None,
    ses: bool,
    query: list[tuple[str, str]],
    body: bytes,
    headers: Mapping[str, str],
    href_base: str,
) -> tuple[int, Any, dict[str, str]]:
    problems = sim.problems
    if item_id is None:
        if method == "GET":
            list_query, vendor = parse_list_query(query, vendor=(SNOW_PARAMETER,) if ses else ())
            _check_filters("tmf656", list_query)
            snow = _parse_snow_query(vendor[SNOW_PARAMETER]) if SNOW_PARAMETER in vendor else SnowQuery()
            matches = [p for p in problems.all() if list_query.matches(p) and snow.matches(p)]
            stop = len(matches) if list_query.limit is None else list_query.offset + list_query.limit
            return _list_answer(list_query, len(matches), matches[list_query.offset : stop])
        if method == "POST":
            problem = problems.create(_json(body), href_base=href_base, incident=ses)
            return 201, problem, {"Location": problem["href"]}
        raise TmfError(405, "Method Not Allowed", f"{method} on a collection")
    return _answer_item(problems, method, item_id, query, body, headers)


def _answer_item(
    store: InventoryStore | ServiceProblems,
    method: str,
    item_id: str,
    query: list[tuple[str, str]],
    body: bytes,
    headers: Mapping[str, str],
) -> tuple[int, Any, dict[str, str]]:
    """Retrieve, merge-patch or delete one item of any API's store."""
    if method == "GET":
        fields = dict(query).get("fields")
        return 200, select_fields(store.get(item_id), tuple(fields.split(",")) if fields else None), {}
    if method == "PATCH":
        _require_merge_patch(headers)
        return 200, store.patch(item_id, _json(body)), {}
    if method == "DELETE":
        store.delete(item_id)
        return 204, None, {}
    raise TmfError(405, "Method Not Allowed", f"{method} on an item")


@attrs.frozen
class SnowQuery:
    """ServiceNow's encoded query as SES accepts it: ``u_source=<x>^sys_updated_on>=<time>``."""

    source: str | None = None
    updated_since: str | None = None  # ISO 8601, compared with lastUpdate

    def matches(self, problem: Mapping[str, Any]) -> bool:
        return (self.source is None or problem.get("originatingSystem") == self.source) and (
            self.updated_since is None or problem["lastUpdate"] >= self.updated_since
        )


def _parse_snow_query(encoded_query: str) -> SnowQuery:
    source = since = None
    for term in encoded_query.split("^"):
        if term.startswith("u_source="):
            source = term[len("u_source=") :]
        elif term.startswith("sys_updated_on>="):
            try:
                since = iso_utc(parse_snow(term[len("sys_updated_on>=") :]))
            except ValueError:
                raise bad_request(f"sysparm_query: {term!r} wants YYYY-MM-DD HH:MM:SS") from None
        else:
            raise bad_request(f"sysparm_query: {term!r} is not supported (u_source=, sys_updated_on>=)")
    return SnowQuery(source, since)


def _require_merge_patch(headers: Mapping[str, str]) -> None:
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
    if content_type != MERGE_PATCH:
        raise TmfError(415, "Unsupported Media Type", f"PATCH takes {MERGE_PATCH}, not {content_type or 'nothing'}")


def _list_answer(query: ListQuery, total: int, page: list[dict[str, Any]] | EncodedItems) -> tuple[int, Any, dict[str, str]]:
    items = [select_fields(item, query.fields) for item in page] if query.fields else page
    partial = query.limit is not None and len(page) < total
    headers = {"X-Total-Count": str(total), "X-Result-Count": str(len(page))}
    return (206 if partial else 200), items, headers
