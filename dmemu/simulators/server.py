"""The simulators' HTTP server: TMF638, TMF639 and TMF656 (v4 and SES paths) and SES TMF642.

One threaded server on 127.0.0.1 (`http_service.LoopbackService`) serves every API; `Simulators`
starts it in-process::

    with Simulators(InventorySpec(services=500)) as sim:
        requests.get(sim.url("tmf638"), params={"limit": 40})

This module is the TMF APIs' HTTP side: routing, authentication, which faults apply, TMF error
bodies and answers; the mechanics every simulator shares (bodies, ``Content-Length`` or chunked,
the fault flow, the request log, the server's lifecycle) are in `http_service`. What the items
are and how edits overlay them is in `store` and `problems`; what the specs allow, in `schema`.
Hrefs are absolute and follow the path asked: an item read at an SES path has its href there.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote

import attrs

from .activity import ProblemActivity
from .clock import iso_utc, parse_snow
from .faults import LOG_LIMIT, RATE_LIMITED, Fault, RequestRecord
from .http_service import Answer, LoopbackService, ReceivedRequest, SimulatorHandler
from .hub import RETRY_DELAYS, Delivery, NotificationHub
from .inventory import Inventory
from .problems import ServiceProblems, correlation_ids, incident_number, with_incident
from .schema import ANSWER_TYPES, ENUMERATIONS
from .spec import InventorySpec
from .store import EncodedItems, InventoryStore
from .tmf import ListQuery, TmfError, bad_request, homed, instant, item_href, parse_list_query, select_fields, too_deep
from .v3 import API as V3_API
from .v3 import from_v3, to_v3, v3_error

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
V3_PATHS = {"tmf656": "/tmf-api/serviceProblemManagement/v3/serviceProblem"}  # for older clients: `v3`
HUB_PATHS = {  # TMF656 notification subscriptions, at each API root it is served under
    "tmf": "/tmf-api/serviceProblemManagement/v4/hub",
    "ses": f"{SES_BASE}/tmf656/hub",
    "v3": "/tmf-api/serviceProblemManagement/v3/hub",
}
_FAMILY_PATHS = {"tmf": TMF_PATHS, "ses": SES_PATHS, "v3": V3_PATHS}
INVENTORY_VENDOR_PARAMETERS = ("updatedDaysAgo", "status")
SNOW_PARAMETER = "sysparm_query"
MERGE_PATCH = "application/merge-patch+json"
UNKNOWN_API = "unknown"  # how the request log names requests to no API
_logger = logging.getLogger("dmemu.simulators")
TICK = 0.05  # wall-clock seconds between the ticker's catch-ups with the problem activity


_SCALAR_TYPES = ("string", "date-time", "integer", "boolean")


def _checked_filters(api: str, query: ListQuery) -> ListQuery:
    """`query` with each filter knowing how to compare; 400 for a filter the API cannot answer.

    That is: an attribute the API does not have, a path into a plain value, a comparison on a
    boolean, an object or a list, a date-time or number that is not one, an enumerated value
    the attribute never takes, and ``fields`` naming an attribute the API does not have."""
    enumerations, types = ENUMERATIONS[api], ANSWER_TYPES[api]
    checked = []
    for term in query.filters:
        name, comparing = term.path[0], term.operator != "eq"
        if name not in types:
            raise bad_request(f"{name!r} is not an attribute of this API; filter on one of: {', '.join(sorted(types))}")
        kind = types[name]
        if len(term.path) > 1:
            if kind in _SCALAR_TYPES:
                raise bad_request(f"{'.'.join(term.path)}: {name} is a {kind}, with no attribute {term.path[1]!r}")
            checked.append(term)
            continue
        if comparing and kind not in ("string", "date-time", "integer"):
            raise bad_request(f"{name}.{term.operator}: {name} is {'a boolean' if kind == 'boolean' else 'not a plain value'}, it cannot be compared")
        if kind == "date-time" and comparing:
            wanted = instant(term.values[0])
            if wanted is None:
                raise bad_request(f"{name}.{term.operator}={term.values[0]!r} is not a date-time (such as 2026-01-31T12:00:00Z)")
            term = attrs.evolve(term, wanted_instant=wanted)
        wanted_form = _FILTER_VALUE_FORMS.get((kind, comparing))
        wrong = [value for value in term.values if wanted_form is not None and not wanted_form[0].fullmatch(value)]
        if wrong:
            raise bad_request(f"{name}: {', '.join(map(repr, wrong))} is not {wanted_form[1]}")
        allowed = enumerations.get(name)
        if allowed is not None and not comparing:
            unknown = [value for value in term.values if value not in allowed]
            if unknown:
                raise bad_request(f"{name}={','.join(unknown)}: not a {name} value ({', '.join(sorted(allowed))})")
        checked.append(term)
    _check_fields(api, query.fields)
    return attrs.evolve(query, filters=tuple(checked))


# What a filter value must look like to be one of an attribute type's values, as JSON writes them
# (an integer equals only an integer; a comparison may take a fraction): (attribute type, comparing).
_FILTER_VALUE_FORMS = {
    ("integer", False): (re.compile(r"-?(0|[1-9]\d*)", re.ASCII), "an integer"),
    ("integer", True): (re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?", re.ASCII), "a number"),
    ("boolean", False): (re.compile("true|false"), "true or false"),
}


def _check_fields(api: str, fields: tuple[str, ...] | None) -> None:
    unknown = [name for name in fields or () if name not in ANSWER_TYPES[api]]
    if unknown:
        raise bad_request(f"fields: {', '.join(unknown)} is not an attribute of this API")


def _fields(query: list[tuple[str, str]]) -> tuple[str, ...] | None:
    """The ``fields`` of a retrieve (a list's are in its `ListQuery`)."""
    return parse_list_query([(name, value) for name, value in query if name == "fields"])[0].fields


def _service_active(item: dict[str, Any]) -> bool:
    return item.get("state") == "active"


def _resource_available(item: dict[str, Any]) -> bool:
    return item.get("resourceStatus") == "available"


class Simulators(LoopbackService):
    """The simulated remote systems on one loopback server, started in-process.

    `credentials` maps an API ("tmf638", "tmf639", "tmf656", "tmf642") to (user, password):
    those APIs then want HTTP basic auth. `now` is the simulated time (epoch seconds); pass
    the DMS clock's ``now`` to keep the two in step. `seed` draws the probabilistic faults;
    the request log keeps the newest `log_limit` requests. `activity` makes ServiceNow users
    work on the service problems over simulated time (`ProblemActivity`; none by default).
    TMF656 ``/hub`` subscribers get notifications (`hub`), retried after each of
    `notification_retry_delays` (wall-clock seconds) when a callback fails; while they run, a
    ticker applies the activity due every `TICK` seconds, so subscribers hear of it without anyone
    reading the problems.

    `stop()` closes the listening socket and every open connection (a client's next request on
    a kept-alive connection fails, as with a real outage); `start()` again listens on the same
    port with everything stored kept, so a harness can take the remote system away and back.
    """

    apis: tuple[str, ...] = ("tmf638", "tmf639", "tmf656", "tmf642")  # what its faults and request log name (`Fault.api`)

    def __init__(
        self,
        spec: InventorySpec | None = None,
        *,
        credentials: Mapping[str, tuple[str, str]] | None = None,
        now: Callable[[], float] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 1,
        log_limit: int = LOG_LIMIT,
        activity: ProblemActivity | None = None,
        notification_retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.spec = spec or InventorySpec()
        self.now = now or time.time
        self.credentials = dict(credentials or {})
        unknown = set(self.credentials) - {*TMF_PATHS, *SES_PATHS}
        if unknown:
            raise ValueError(f"credentials for unknown APIs: {', '.join(sorted(unknown))}")
        super().__init__(_Handler, host=host, port=port, seed=seed, log_limit=log_limit, thread_name="dmemu-simulators")
        # Bound first: hrefs are absolute, as TMF servers give them, so they need the port.
        self.inventory = Inventory(self.spec, self.now, href_base=self.base_url)
        self.services = self._inventory_store("tmf638", lambda: self.inventory.services)
        self.resources = self._inventory_store("tmf639", lambda: self.inventory.resources)
        self.hub = NotificationHub(self._present_problem, retry_delays=notification_retry_delays)
        self.problems = ServiceProblems(self.now, self.url("tmf656"), activity=activity, listener=self.hub.publish)
        self._ticker: threading.Thread | None = None
        self._ticking = threading.Event()  # set while the ticker should run
        self.alarms: list[dict[str, Any]] = []
        self._alarms_lock = threading.Lock()  # an alarm's id is its place in the list

    def _inventory_store(self, api: str, source: Callable[[], Any]) -> InventoryStore:
        return InventoryStore(source, self.now, api, self.url(api))

    def url(self, api: str, *, ses: bool = False, version: int = 4) -> str:
        """The collection URL of an API, at its TMF v4 path, (``ses=True``) its SES path or
        (``version=3``, TMF656 only) its TMF v3 path."""
        family = "ses" if ses else "v3" if version == 3 else "tmf"
        paths = _FAMILY_PATHS[family]
        if api not in paths or (ses and version != 4):
            raise KeyError(f"no {'SES' if ses else f'TMF v{version}'} path for {api!r}; APIs: {', '.join(paths)}")
        return self.base_url + paths[api]

    def hub_url(self, *, ses: bool = False, version: int = 4) -> str:
        """The TMF656 ``/hub`` URL, at the TMF v4 API root, (``ses=True``) SES's or (``version=3``) v3's."""
        return self.base_url + HUB_PATHS["ses" if ses else "v3" if version == 3 else "tmf"]

    def deliveries(self) -> list[Delivery]:
        """Every attempt to deliver a notification (the newest DELIVERY_LOG_LIMIT), in order."""
        return self.hub.deliveries()

    def _present_problem(self, family: str, problem: dict[str, Any]) -> dict[str, Any]:
        """A stored problem as the paths of `family` ("tmf", "ses", "v3") show it."""
        shown = homed(problem, self.url("tmf656", ses=family == "ses", version=3 if family == "v3" else 4))
        if family == "v3":
            return to_v3(shown, self.v3_reference_urls)
        return with_incident(shown) if family == "ses" else shown

    @property
    def v3_reference_urls(self) -> dict[str, str]:
        """Where the hrefs v3 requires of references point (`v3.to_v3`)."""
        return {"ServiceRef": self.url("tmf638"), "ResourceRef": self.url("tmf639"), "ServiceProblemRef": self.url("tmf656", version=3)}

    def _tick(self) -> None:
        while not self._ticking.wait(TICK):
            try:
                self.problems.catch_up()
            except Exception:  # a bug: logged, and the ticker goes on
                _logger.exception("applying the service problem activity failed")

    def start(self) -> Simulators:
        """Serve (again, after `stop`, on the same port; OSError if something else took it)."""
        self.hub.start()
        if self.problems.activity is not None and self._ticker is None:
            self._ticking.clear()
            self._ticker = threading.Thread(target=self._tick, name="dmemu-problem-activity", daemon=True)
            self._ticker.start()
        return super().start()

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticking.set()  # here: "stop"
            self._ticker.join()
            self._ticker = None
        self.hub.stop()
        super().stop()

    def create_alarm(self, body: Any, collection_url: str) -> dict[str, Any]:
        """An SES TMF642 alarm as posted, with the id and href the server gives it."""
        if not isinstance(body, dict):
            raise bad_request("an alarm is a JSON object")
        with self._alarms_lock:
            alarm_id = f"AL-{len(self.alarms) + 1:07d}"
            alarm = {**body, "id": alarm_id, "href": item_href(collection_url, alarm_id)}
            self.alarms.append(alarm)
        return alarm

    def requests(self, api: str | None = None) -> list[RequestRecord]:
        return self.faults.requests(api)


class _Handler(SimulatorHandler[Simulators]):
    malformed_tail = b"<<not json"

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # this module's `time`: tests hold a latency's wait by replacing it

    def do_PUT(self) -> None:
        self._refuse_method("PUT")

    def do_HEAD(self) -> None:
        self._refuse_method("HEAD")

    def do_OPTIONS(self) -> None:
        self._refuse_method("OPTIONS")

    def _refusal(self, status: int, reason: str, message: str, headers: dict[str, str]) -> tuple[int, Any]:
        return _error_answer(TmfError(status, reason, message), headers)

    def _refuse_method(self, method: str) -> None:
        """The TMF APIs here take GET, POST, PATCH and DELETE: anything else is a JSON 405."""
        if self._body_or_refusal() is None:
            return
        error = TmfError(405, "Method Not Allowed", f"{method} is not supported; use GET, POST, PATCH or DELETE")
        headers = {"Allow": "GET, POST, PATCH, DELETE"}
        status, payload = _error_answer(error, headers)
        self._send_json(status, None if method == "HEAD" else payload, headers, None)

    # -- dispatch ---------------------------------------------------------------------------

    def _answer_request(self, request: ReceivedRequest) -> None:
        sim = self.service
        method, path, query, body = request.method, request.path, request.query, request.body
        route = _route(path)
        if route is None:  # logged too: a client calling a wrong path is worth seeing
            self._record(request, UNKNOWN_API, sim.faults.next_number(UNKNOWN_API), 404, None, query=dict(query))
            self._send_error(TmfError(404, "Not Found", f"no API at {path}"))
            return
        api, item_id, family, hub = route
        ses = family == "ses"
        number = sim.faults.next_number(api)
        fault = sim.faults.fault_for(
            api, method, number, _page(query),
            target="hub" if hub else "collection" if item_id is None else "item", paths=family, query=_values_by_name(query),
            now=sim.now(),
        )  # fmt: skip

        def answer(fault: Fault | None) -> Answer:
            headers: dict[str, str] = {}
            try:
                self._check_auth(api)
                if hub:
                    status, payload, headers = _answer_hub(sim, method, item_id, family, body)
                elif family == "v3":
                    status, payload, headers = _answer_v3(sim, method, item_id, query, body, self.headers)
                else:
                    status, payload, headers = _answer(sim, method, api, item_id, ses, query, body, self.headers)
            except TmfError as error:
                status, payload = _error_answer(error, headers)
                fault = None  # a refused request is answered whole
            except Exception as error:  # a simulator bug still answers, as a TMF 500, and is logged
                _logger.exception("simulator failed on %s %s", method, self.path)
                status, payload = _error_answer(TmfError(500, "Internal Server Error", f"{type(error).__name__}: {error}"), headers)
                fault = None
            return status, payload, headers, fault

        outcome = self._answer_with_faults(request, api, number, fault, answer, query=dict(query))
        if outcome is None:
            return
        status, payload, headers, fault = outcome
        if family == "v3" and status >= 400 and isinstance(payload, dict):
            payload = v3_error(payload)
        self._send_json(status, payload, headers, fault)

    def _fault_refusal(self, fault: Fault, number: int, headers: dict[str, str]) -> tuple[int, Any]:
        if fault.kind == "rate_limit":
            error = TmfError(RATE_LIMITED, "Too Many Requests", f"more than {fault.limit} requests in {fault.per:g} s")
        else:
            error = TmfError(fault.status, "Simulated Fault", f"fault on request {number}")
        return _error_answer(error, headers)

    def _check_auth(self, api: str) -> None:
        wanted = self.service.credentials.get(api)
        if wanted is None:
            return
        scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            given = b""
        # RFC 7617: the scheme is case-insensitive
        if scheme.lower() != "basic" or not hmac.compare_digest(given, f"{wanted[0]}:{wanted[1]}".encode()):
            raise TmfError(401, "Unauthorized", f"{api} wants HTTP basic authentication", code="401")

    # -- answers ----------------------------------------------------------------------------

    def _send_answer(self, status: int, payload: Any, headers: Mapping[str, str], fault: Fault | None) -> None:
        self._send_json(status, payload, headers, fault)

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str], fault: Fault | None) -> None:
        if isinstance(payload, EncodedItems) and len(payload) > ITEMS_PER_WRITE and (fault is None or fault.kind == "latency"):
            self._send_items(status, payload, headers)
            return
        if payload is None:
            data = b""
        elif isinstance(payload, EncodedItems):
            data = f"[{','.join(payload)}]".encode()
        else:
            data = json.dumps(payload, separators=(",", ":")).encode()
        self._write_answer(status, data, headers, fault, None if payload is None else "application/json;charset=utf-8")

    def _send_items(self, status: int, items: EncodedItems, headers: Mapping[str, str]) -> None:
        """A long list (a GET with no limit) written a batch of items at a time: joined and encoded
        whole, a million items would be held three times over."""
        self._answer_http09_with_head()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        for name, value in headers.items():
            self.send_header(name, value)
        # The items are ASCII JSON (non-ASCII is escaped), so a character is a byte.
        self.send_header("Content-Length", str(sum(map(len, items)) + len(items) - 1 + 2))
        self.end_headers()
        for start in range(0, len(items), ITEMS_PER_WRITE):
            batch = ",".join(items[start : start + ITEMS_PER_WRITE]).encode("ascii")
            opening = b"[" if start == 0 else b","
            closing = b"]" if start + ITEMS_PER_WRITE >= len(items) else b""
            self.wfile.write(opening + batch + closing)

    def _send_error(self, error: TmfError) -> None:
        headers: dict[str, str] = {}
        status, payload = _error_answer(error, headers)
        self._send_json(status, payload, headers, None)

    def _answer_admin(self, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> None:
        sim = self.service
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
                api = dict(query).get("api")  # ?api=tmf638: that API's requests only
                self._send_json(200, [attrs.asdict(r) for r in sim.faults.requests(api)], {}, None)
            elif path == "/_admin/deliveries" and method == "GET":
                self._send_json(200, [attrs.asdict(d) for d in sim.deliveries()], {}, None)
            elif path == "/_admin/requests" and method == "DELETE":
                sim.faults.clear_log()
                self._send_json(204, None, {}, None)
            else:
                raise TmfError(404, "Not Found", f"no admin endpoint {method} {path}")
        except TmfError as error:
            self._send_error(error)


def _error_answer(error: TmfError, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """(status, TMF error body) of an error; adds the headers it needs."""
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="dmemu simulators"'
    return error.status, error.body()


class _Route(NamedTuple):
    api: str
    item_id: str | None
    family: str  # "tmf", "ses" or "v3": which paths
    hub: bool  # a TMF656 /hub path


def _route(path: str) -> _Route | None:
    """What a request path asks for."""
    for family, paths in _FAMILY_PATHS.items():
        hub_path = HUB_PATHS.get(family)
        for api, collection, hub in [*((api, collection, False) for api, collection in paths.items()), ("tmf656", hub_path, True)]:
            if collection is None:
                continue
            if path == collection:
                return _Route(api, None, family, hub)
            if path.startswith(collection + "/"):
                item_id = path[len(collection) + 1 :]
                if item_id and "/" not in item_id:  # an id with a "/" comes as %2F
                    return _Route(api, unquote(item_id), family, hub)
    return None


def _answer_hub(sim: Simulators, method: str, subscription_id: str | None, family: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
    """POST /hub, GET and DELETE /hub/{id}."""
    hub_url = sim.base_url + HUB_PATHS[family]
    if subscription_id is None:
        if method != "POST":
            raise TmfError(405, "Method Not Allowed", f"{method} on /hub: register a listener with POST")
        subscription = sim.hub.subscribe(_json(body), family)
        return 201, subscription, {"Location": item_href(hub_url, subscription["id"])}
    if method == "GET":
        return 200, sim.hub.get(subscription_id), {}
    if method == "DELETE":
        sim.hub.delete(subscription_id)
        return 204, None, {}
    raise TmfError(405, "Method Not Allowed", f"{method} on a hub subscription: GET or DELETE it")


def _values_by_name(query: list[tuple[str, str]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in query:
        values.setdefault(name, []).append(value)
    return values


ITEMS_PER_WRITE = 1000  # a list longer than this is written in pieces (`_Handler._send_items`)


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
    except RecursionError:
        raise too_deep() from None


def _answer(
    sim: Simulators,
    method: str,
    api: str,
    item_id: str | None,
    ses: bool,
    query: list[tuple[str, str]],
    body: bytes,
    headers: Mapping[str, str],
) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON payload, extra headers) of one API request."""
    collection_url = sim.url(api, ses=ses)  # where the answer's hrefs point: the path asked
    if api == "tmf642":
        if method != "POST" or item_id is not None:
            raise TmfError(405, "Method Not Allowed", "the SES alarm API takes POST on its collection")
        alarm = sim.create_alarm(_json(body), collection_url)
        return 201, alarm, {"Location": alarm["href"]}
    if api == "tmf656":
        return _answer_problems(sim, method, item_id, ses, query, body, headers, collection_url)
    store = sim.services if api == "tmf638" else sim.resources
    status_filter = _service_active if api == "tmf638" else _resource_available
    if item_id is None:
        if method == "GET":
            list_query, vendor = parse_list_query(query, vendor=INVENTORY_VENDOR_PARAMETERS)
            list_query = _checked_filters(api, list_query)
            if "status" in vendor and vendor["status"] not in ("0", "1"):
                raise bad_request(f"status={vendor['status']!r}: use 1 for active items only")
            if vendor.get("status") == "0":
                vendor = {k: v for k, v in vendor.items() if k != "status"}
            total, page = store.listing(list_query, vendor, status_filter, collection_url)
            return _list_answer(list_query, total, page)
        if method == "POST":
            item = store.create(_json(body), collection_url)
            return 201, item, {"Location": item["href"]}
        raise TmfError(405, "Method Not Allowed", f"{method} on a collection")
    return _answer_item(api, store, method, item_id, query, body, headers, collection_url)


def _answer_problems(
    sim: Simulators,
    method: str,
    item_id: str | None,
    ses: bool,
    query: list[tuple[str, str]],
    body: bytes,
    headers: Mapping[str, str],
    collection_url: str,
) -> tuple[int, Any, dict[str, str]]:
    problems = sim.problems
    if item_id is None:
        if method == "GET":
            list_query, vendor = parse_list_query(query, vendor=(SNOW_PARAMETER,) if ses else ())
            list_query = _checked_filters("tmf656", list_query)
            snow = _parse_snow_query(vendor[SNOW_PARAMETER]) if SNOW_PARAMETER in vendor else SnowQuery()
            shown = [with_incident(p) for p in problems.all(collection_url)] if ses else problems.all(collection_url)
            matches = snow.ordered([p for p in shown if list_query.matches(p) and snow.matches(p)])
            stop = len(matches) if list_query.limit is None else list_query.offset + list_query.limit
            return _list_answer(list_query, len(matches), matches[list_query.offset : stop])
        if method == "POST":
            problem = problems.create(_json(body), collection_url=collection_url, incident=ses)
            return 201, problem, {"Location": problem["href"]}
        raise TmfError(405, "Method Not Allowed", f"{method} on a collection")
    return _answer_item("tmf656", problems, method, item_id, query, body, headers, collection_url, with_incident if ses else None)


def _answer_v3(
    sim: Simulators, method: str, item_id: str | None, query: list[tuple[str, str]], body: bytes, headers: Mapping[str, str]
) -> tuple[int, Any, dict[str, str]]:
    """TMF656 v3: the same problems, with v3 bodies and answers (`v3`)."""
    problems, collection_url, urls = sim.problems, sim.url("tmf656", version=3), sim.v3_reference_urls
    if item_id is None:
        if method == "GET":
            list_query = _checked_filters(V3_API, parse_list_query(query)[0])
            matches = [shown for p in problems.all(collection_url) if list_query.matches(shown := to_v3(p, urls))]
            stop = len(matches) if list_query.limit is None else list_query.offset + list_query.limit
            return _list_answer(list_query, len(matches), matches[list_query.offset : stop])
        if method == "POST":
            problem = to_v3(problems.create(from_v3(_json(body)), collection_url=collection_url), urls)
            return 201, problem, {"Location": problem["href"]}
        raise TmfError(405, "Method Not Allowed", f"{method} on a collection")
    if method == "GET":
        fields = _fields(query)
        _check_fields(V3_API, fields)
        return 200, select_fields(to_v3(problems.get(item_id, collection_url), urls), fields), {}
    if method == "PATCH":
        _require_merge_patch(headers)
        return 200, to_v3(problems.patch(item_id, from_v3(_json(body), patch=True), collection_url), urls), {}
    if method == "DELETE":
        problems.delete(item_id)
        return 204, None, {}
    raise TmfError(405, "Method Not Allowed", f"{method} on an item")


def _answer_item(
    api: str,
    store: InventoryStore | ServiceProblems,
    method: str,
    item_id: str,
    query: list[tuple[str, str]],
    body: bytes,
    headers: Mapping[str, str],
    collection_url: str,
    present: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """Retrieve, merge-patch or delete one item of any API's store; `present` shows an answer's item
    as the path asked has it."""
    present = present or (lambda item: item)
    if method == "GET":
        fields = _fields(query)
        _check_fields(api, fields)
        return 200, select_fields(present(store.get(item_id, collection_url)), fields), {}
    if method == "PATCH":
        _require_merge_patch(headers)
        return 200, present(store.patch(item_id, _json(body), collection_url)), {}
    if method == "DELETE":
        store.delete(item_id)
        return 204, None, {}
    raise TmfError(405, "Method Not Allowed", f"{method} on an item")


SNOW_ORDER_FIELDS = {"sys_updated_on": "lastUpdate", "sys_created_on": "creationDate"}  # ServiceNow's names -> ours
SNOW_SINCE_FIELDS = SNOW_ORDER_FIELDS  # the ``<field>>=<time>`` terms compare the same attributes


@attrs.frozen
class SnowQuery:
    """ServiceNow's encoded query as SES accepts it: terms joined by ``^`` (AND) among

    - ``u_source=<x>``: the problem's ``originatingSystem`` is x ("dataminer" for what the
      connectors create when they say so, "servicenow" for ServiceNow users' own problems);
    - ``correlation_id=<id>``: its ``externalIdentifier`` holds an entry of type
      ``DataMinerTicketId`` with that id (ServiceNow's correlation_id field);
    - ``number=<INC...>``: its incident number (`problems.incident_number`);
    - ``sys_updated_on>=<time>``, ``sys_created_on>=<time>``: ``lastUpdate`` / ``creationDate``
      at or after a ``YYYY-MM-DD HH:MM:SS`` (UTC, second precision);
    - ``ORDERBY<field>`` or ``ORDERBYDESC<field>`` (sys_updated_on, sys_created_on; ties stay
      in creation order, so paging through equal times neither repeats nor skips).
    """

    source: str | None = None
    updated_since: str | None = None  # ISO 8601, compared with lastUpdate
    order_by: str | None = None  # the attribute of SNOW_ORDER_FIELDS to sort on
    descending: bool = False
    correlation_id: str | None = None
    number: str | None = None
    created_since: str | None = None  # ISO 8601, compared with creationDate

    def matches(self, problem: Mapping[str, Any]) -> bool:
        return (
            (self.source is None or problem.get("originatingSystem") == self.source)
            and (self.updated_since is None or problem["lastUpdate"] >= self.updated_since)
            and (self.created_since is None or problem["creationDate"] >= self.created_since)
            and (self.correlation_id is None or self.correlation_id in correlation_ids(problem))
            and (self.number is None or incident_number(problem) == self.number)
        )

    def ordered(self, problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`problems` (in creation order) in the order asked; server-stamped times compare as text."""
        if self.order_by is None:
            return problems
        return sorted(problems, key=lambda problem: problem[self.order_by], reverse=self.descending)  # stable both ways


_SNOW_TERMS = "u_source=, correlation_id=, number=, sys_updated_on>=, sys_created_on>=, ORDERBY, ORDERBYDESC"


def _parse_snow_query(encoded_query: str) -> SnowQuery:
    found: dict[str, Any] = {}
    for term in encoded_query.split("^"):
        name, equals, value = term.partition("=")
        if name in ("u_source", "correlation_id", "number") and equals:
            found[{"u_source": "source"}.get(name, name)] = value
        elif name.endswith(">") and name[:-1] in SNOW_SINCE_FIELDS and equals:
            try:
                since = iso_utc(parse_snow(value))
            except ValueError:
                raise bad_request(f"sysparm_query: {term!r} wants YYYY-MM-DD HH:MM:SS") from None
            found["updated_since" if name[:-1] == "sys_updated_on" else "created_since"] = since
        elif term.startswith("ORDERBY"):
            descending = term.startswith("ORDERBYDESC")
            field = term.removeprefix("ORDERBYDESC" if descending else "ORDERBY")
            if field not in SNOW_ORDER_FIELDS:
                raise bad_request(f"sysparm_query: {term!r} orders by {field!r}; order by one of {', '.join(SNOW_ORDER_FIELDS)}")
            found.update(order_by=SNOW_ORDER_FIELDS[field], descending=descending)
        else:
            raise bad_request(f"sysparm_query: {term!r} is not supported ({_SNOW_TERMS})")
    return SnowQuery(**found)


def _require_merge_patch(headers: Mapping[str, str]) -> None:
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
    if content_type != MERGE_PATCH:
        raise TmfError(415, "Unsupported Media Type", f"PATCH takes {MERGE_PATCH}, not {content_type or 'nothing'}")


def _list_answer(query: ListQuery, total: int, page: list[dict[str, Any]] | EncodedItems) -> tuple[int, Any, dict[str, str]]:
    items = [select_fields(item, query.fields) for item in page] if query.fields else page
    partial = query.limit is not None and len(page) < total
    headers = {"X-Total-Count": str(total), "X-Result-Count": str(len(page))}
    return (206 if partial else 200), items, headers
