"""The REST API of a running DataMiner System: JSON over HTTP on Starlette.

Every route is declared once in `ROUTES` (method, path, handler, what it takes): the router and
the OpenAPI document (`/api/openapi.json`) are both built from it. Handlers are plain functions
run on worker threads, since the DMS's calls may block (a set waits for its QActions); reads of
memory that never wait (`ApiRoute.inline`) run on the server's event loop instead, as the hop to
a worker thread and back costs more than they do. An element
is addressed by ``AGENT/ELEMENT`` ids or by its name (URL-encoded), a parameter, table or column
by id or name, as in Python (`dms.element`, `element.get`).

Access: every ``/api/`` request carries the server's token (``Authorization: Bearer TOKEN`` or
``X-Dmemu-Token: TOKEN``), never a cookie, so another site open in the same browser cannot act
on the DMS; a request from another origin is refused outright.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from ..dms import DataMinerSystem, ScriptState, Severity, TicketState
from ..pages import find_page, pages_of
from ..protocol import Button, Element, Parameter, RealClock, VirtualClock, element_ids
from ..protocol.errors import DmemuError
from ..protocol.http import is_loopback_host
from . import shapes
from .errors import ApiError, api_error
from .events import EVENT_TYPES, EventHub, stream
from .tables import ServedTables, column_index, is_window, list_limit, parse_query, query_rows

_logger = logging.getLogger("dmemu.web")

ELEMENT_COMMANDS = ("start", "stop", "pause", "restart")


def host_name(host_header: str) -> str:
    """The name or address of a Host header, without its port (``[::1]:80`` gives ``[::1]``)."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0]


# -- responses ---------------------------------------------------------------------------------


class JsonResponse(Response):
    """Compact JSON (`shapes.json_text`), or JSON made before (`shapes.JsonText`)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return (content if isinstance(content, shapes.JsonText) else shapes.json_text(content)).encode("utf-8")


def error_response(error: ApiError, headers: Mapping[str, str] | None = None) -> JsonResponse:
    return JsonResponse(error.body(), status_code=error.status, headers=dict(headers or {}, **{"Cache-Control": "no-store"}))


# -- the route table ---------------------------------------------------------------------------


@attrs.frozen
class ApiRoute:
    """One route: its handler gets the `Api`, the path parameters, the query parameters and the
    JSON body (None when the route takes none) and answers JSON-ready data."""

    method: str
    path: str
    handler: Callable[..., Any]
    summary: str
    query: tuple[tuple[str, str], ...] = ()  # (name, description)
    body: str | None = None  # what the JSON body holds
    status: int = 200
    tag: str = "system"
    # Answered on the event loop, not a worker thread: True for a quick read of memory that never
    # waits; or a test of the query parameters, for a route quick only for some (a table's page).
    inline: bool | Callable[[Any], bool] = False

    def runs_inline(self, query: Any) -> bool:
        return self.inline if isinstance(self.inline, bool) else self.inline(query)


class Api:
    """What the handlers reach: the DMS, the simulators it was served with, the event hub."""

    def __init__(self, dms: DataMinerSystem, simulators: Any, hub: EventHub) -> None:
        self.dms = dms
        self.simulators = simulators
        self.hub = hub
        self.tables = ServedTables()

    def close(self) -> None:
        """End the clients' event streams and stop listening to the DMS (the server stops)."""
        self.hub.close()
        self.tables.close()

    def element(self, ref: str) -> Element:
        """An element by ``AGENT/ELEMENT`` or name; a 404 naming the elements there are."""
        try:
            return self.dms.element(ref)
        except DmemuError as error:
            raise ApiError(404, "element", str(error)) from None

    def simulator(self) -> Any:
        if self.simulators is None:
            raise ApiError(404, "simulators", "this DMS was served without simulators (dms.serve(simulators=...), dmemu demo --web)")
        return self.simulators


def _ref(text: str) -> int | str:
    """A parameter, table or column reference from a path: digits are an id, anything else a name."""
    return int(text) if text.isdigit() else text


def _parameter(element: Element, ref: str) -> Parameter:
    model = element.protocol.model
    pid = model.by_name.get(ref) if not ref.isdigit() else int(ref)
    parameter = model.parameters.get(pid) if pid is not None else None
    if parameter is None:
        if pid in model.tables:
            raise ApiError(404, "parameter", f"{model.tables[pid].table.label} is a table: see /tables/{pid}")
        raise ApiError(404, "parameter", f"element {element.name!r} ({element.protocol.name}) has no parameter {ref!r}")
    return parameter


def _table(element: Element, ref: str) -> Any:
    model = element.protocol.model
    try:
        return model.table(_ref(ref))
    except DmemuError as error:
        raise ApiError(404, "table", f"element {element.name!r}: {error}") from None


def _body_field(body: Any, name: str, *, required: bool = True) -> Any:
    if not isinstance(body, dict):
        raise ApiError(400, "body", f'the body is a JSON object such as {{"{name}": ...}}')
    if name not in body:
        if required:
            raise ApiError(400, name, f'the body needs "{name}"')
        return None
    return body[name]


# -- handlers: the system and its elements -----------------------------------------------------


def get_system(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    dms = api.dms
    clock = "virtual" if isinstance(dms.clock, VirtualClock) else "real" if isinstance(dms.clock, RealClock) else type(dms.clock).__name__
    return {
        "version": __version__,
        "now": dms.clock.now(),
        "clock": clock,
        "agents": [
            {"id": agent, "elements": sum(1 for element in dms.elements if element.agent_id == agent)} for agent in dms.agent_ids
        ],
        "element_count": len(dms.elements),
        "licences": sorted(dms.licences),
        "scripts": dms.automation.scripts,
        "simulators": api.simulators is not None,
    }


def list_elements(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    elements = sorted(api.dms.elements, key=lambda element: element.ids)
    search = (query.get("search") or "").casefold()
    if search:
        elements = [e for e in elements if any(search in text.casefold() for text in (e.name, shapes.element_ref(e), e.protocol.name))]
    if query.get("state"):
        elements = [e for e in elements if e.state.value.casefold() == query["state"].casefold()]
    if query.get("protocol"):
        elements = [e for e in elements if e.protocol.name == query["protocol"]]
    if query.get("agent"):
        elements = [e for e in elements if str(e.agent_id) == query["agent"]]
    return {"elements": [shapes.element_json(element) for element in elements], "count": len(elements)}


def get_element(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    element = api.element(path["element"])
    return {
        **shapes.element_json(element),
        "pages": [
            {"name": page.name, "parent": page.parent, "depth": page.depth, "sub_pages": list(page.sub_pages)}
            for page in pages_of(element.protocol)
        ],
    }


def _element_command(command: str) -> Callable[..., Any]:
    def run(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
        element = api.element(path["element"])
        getattr(element, command)()
        return shapes.element_json(element)

    run.__name__ = f"{command}_element"
    return run


def list_pages(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    element = api.element(path["element"])
    return {"element": shapes.element_json(element), "pages": [shapes.page_json(element, page) for page in pages_of(element.protocol)]}


def get_page(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    element = api.element(path["element"])
    try:
        page = find_page(element.protocol, path["page"])
    except DmemuError as error:
        raise ApiError(404, "page", str(error)) from None
    return {"element": shapes.element_json(element), **shapes.page_json(element, page)}


def list_parameters(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    element = api.element(path["element"])
    return {
        "element": shapes.element_ref(element),
        "parameters": [shapes.parameter_json(shapes.parameter_content(element, p)) for p in element.protocol.parameters],
    }


def get_parameter(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    element = api.element(path["element"])
    parameter = _parameter(element, path["parameter"])
    return {"element": shapes.element_ref(element), **shapes.parameter_json(shapes.parameter_content(element, parameter))}


def set_parameter(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    """As `element.set`: checked first (a refused value changes nothing), then its QActions run."""
    element = api.element(path["element"])
    parameter = _parameter(element, path["parameter"])
    value = _body_field(body, "value")
    _set(element, parameter, value)
    return {"element": shapes.element_ref(element), **shapes.parameter_json(shapes.parameter_content(element, parameter))}


def press_button(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    element = api.element(path["element"])
    parameter = _parameter(element, path["parameter"])
    if not isinstance(parameter.type, Button):
        raise ApiError(422, parameter.name, f"{parameter.label} is no button; set it with PUT .../parameters/{parameter.id}")
    _set(element, parameter, 1)
    return {"element": shapes.element_ref(element), **shapes.parameter_json(shapes.parameter_content(element, parameter))}


def _set(element: Element, parameter: Parameter, value: Any) -> None:
    try:
        element.set(parameter.id, value)
    except DmemuError as error:
        answer = api_error(error, parameter.name)
        if answer is None:
            raise
        raise answer from None


def list_tables(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    element = api.element(path["element"])
    return {"element": shapes.element_ref(element), "tables": [shapes.table_json(element, table) for table in element.protocol.tables]}


def get_table(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    element = api.element(path["element"])
    model = _table(element, path["table"])
    view = element.table(model.table.id)
    row_query = parse_query(view, query)
    served = api.tables.of(element, model.table)
    total, matched, rows = query_rows(view, model.table, row_query, served)
    columns = model.table.columns
    head = {
        "element": shapes.element_ref(element),
        **shapes.table_json(element, model.table),
        "row_count": total,
        "matched": matched,
        "offset": row_query.offset,
        "limit": row_query.limit,
        "sort": None if row_query.sort is None else columns[row_query.sort].name,
        "descending": row_query.descending,
    }
    return shapes.with_json_field(head, "rows", served.rows_text(view, rows))


def get_row(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    element = api.element(path["element"])
    model = _table(element, path["table"])
    view = element.table(model.table.id)
    key = path["key"]
    if key not in view:
        raise ApiError(404, "key", f"{model.table.label} of element {element.name!r} has no row {key!r}")
    return {"element": shapes.element_ref(element), "table": model.table.id, **shapes.row_json(view, model.table, key)}


def set_cell(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    """As `element.set_cell`: a write column's cell, checked first, then its QActions run."""
    element = api.element(path["element"])
    model = _table(element, path["table"])
    view = element.table(model.table.id)
    index = column_index(view, path["column"], "column")
    column = model.table.columns[index]
    value = _body_field(body, "value")
    key = path["key"]
    try:
        element.set_cell(model.table.id, key, column.id, value)
    except DmemuError as error:
        answer = api_error(error, column.name)
        if answer is None:
            raise
        raise answer from None
    return {"element": shapes.element_ref(element), "table": model.table.id, **shapes.row_json(view, model.table, key)}


# -- handlers: alarms, tickets, automation ----------------------------------------------------


def _alarm_filters(api: Api, query: Any) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if query.get("element"):
        ref = query["element"]
        element = api.dms.find(ref)
        if element is not None:
            filters["element"] = element
        elif element_ids(ref) is not None:
            filters["element"] = element_ids(ref)  # a deleted element's history is still there
        else:
            api.element(ref)  # raises the 404
    if query.get("severity"):
        try:
            filters["severity"] = Severity.from_label(query["severity"])
        except ValueError as error:
            raise ApiError(400, "severity", str(error)) from None
    if query.get("parameter"):
        filters["parameter"] = _ref(query["parameter"])
    return filters


def list_active_alarms(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    alarms = api.dms.alarms.active(**_alarm_filters(api, query))
    return {"alarms": [shapes.alarm_json(alarm, api.dms.find(alarm.element_ids)) for alarm in alarms], "count": len(alarms)}


def list_alarm_history(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    alarms = api.dms.alarms.history(**_alarm_filters(api, query))
    return {"alarms": [shapes.alarm_json(alarm, api.dms.find(alarm.element_ids)) for alarm in alarms], "count": len(alarms)}


def get_alarm(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    if not path["alarm"].isdigit():
        raise ApiError(404, "alarm", f"alarm ids are whole numbers, not {path['alarm']!r}")
    try:
        alarm = api.dms.alarms.get(int(path["alarm"]))
    except DmemuError as error:
        raise ApiError(404, "alarm", str(error)) from None
    return shapes.alarm_json(alarm, api.dms.find(alarm.element_ids))


def list_tickets(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    filters: dict[str, Any] = {}
    if query.get("state"):
        try:
            filters["state"] = TicketState(query["state"])
        except ValueError:
            states = ", ".join(state.value for state in TicketState)
            raise ApiError(400, "state", f"{query['state']!r} is not a ticket state; states: {states}") from None
    if query.get("type"):
        filters["type"] = query["type"]
    if query.get("element"):
        filters["element"] = api.element(query["element"])
    try:
        tickets = api.dms.tickets.query(**filters)
    except DmemuError as error:
        raise api_error(error, "type") or error from None
    return {"tickets": [shapes.ticket_json(ticket) for ticket in tickets], "count": len(tickets)}


def get_ticket(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    try:
        return shapes.ticket_json(api.dms.tickets.get(path["ticket"]))
    except DmemuError as error:
        raise ApiError(404, "ticket", str(error)) from None


def list_ticket_types(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    return {"types": [ticket_type.to_record() for ticket_type in api.dms.tickets.types]}


def list_scripts(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    return {"scripts": api.dms.automation.scripts}


def start_run(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    script_input = _body_field(body, "input", required=False) if body is not None else None
    try:
        run = api.dms.automation.run(path["script"], script_input)
    except DmemuError as error:
        raise api_error(error, "script") or error from None
    return shapes.run_json(run)


def list_runs(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    state = query.get("state")
    if state:
        try:
            ScriptState(state)
        except ValueError:
            states = ", ".join(s.value for s in ScriptState)
            raise ApiError(400, "state", f"{state!r} is not a run state; states: {states}") from None
    runs = api.dms.automation.runs(script=query.get("script") or None, state=state or None)
    return {"runs": [shapes.run_json(run) for run in runs], "count": len(runs)}


def get_run(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    for run in api.dms.automation.runs():
        if str(run.id) == path["run"]:
            return shapes.run_json(run)
    raise ApiError(404, "run", f"no script run {path['run']!r} is kept (the last {api.dms.automation.history_limit} finished ones are)")


# -- handlers: simulators ----------------------------------------------------------------------


def get_simulators(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    sim = api.simulator()
    # apis: what a fault or the request log may name, for the console's lists ("*" is every one).
    return {"base_url": sim.base_url, "apis": list(sim.apis), "faults": len(sim.faults.faults), "requests": len(sim.requests())}


def list_faults(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    return {"faults": [fault.to_json() for fault in api.simulator().faults.faults]}


def add_faults(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    """One fault (a JSON object) or several (a list), as the simulators' own ``/_admin/faults`` takes them."""
    from ..simulators import Fault  # the simulators are optional here: loaded when used

    sim = api.simulator()
    try:
        faults = [Fault.from_json(entry) for entry in (body if isinstance(body, list) else [body])]
    except (TypeError, ValueError) as error:
        raise ApiError(422, "fault", str(error)) from None
    sim.faults.add(*faults)
    return {"faults": [fault.to_json() for fault in sim.faults.faults]}


def clear_faults(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    api.simulator().faults.clear()
    return {"faults": []}


def list_requests(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    records = api.simulator().requests(query.get("api") or None)
    offset = _offset(query.get("offset"))
    limit = list_limit(query.get("limit"))
    # The newest first: a person looks for what just happened.
    newest = records[::-1][offset : offset + limit]
    return {"count": len(records), "offset": offset, "limit": limit, "requests": [shapes.record_json(r) for r in newest]}


def clear_requests(api: Api, path: dict[str, str], query: Any, body: Any) -> Any:
    api.simulator().faults.clear_log()
    return {"count": 0, "requests": []}


def _offset(text: str | None) -> int:
    if not text:
        return 0
    if not text.isdigit():
        raise ApiError(400, "offset", f"offset is a whole number from 0, not {text!r}")
    return int(text)


# -- the table ---------------------------------------------------------------------------------

E = "/api/elements/{element:path}"
ALARM_FILTERS = (
    ("element", "an element (AGENT/ELEMENT or name)"),
    ("severity", "the least severity: Warning, Minor, Major or Critical"),
    ("parameter", "a parameter or column, by id or name"),
)
ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute("GET", "/api/system", get_system, "The DMS: version, clock, agents, licences, scripts", inline=True),
    ApiRoute(
        "GET", "/api/elements", list_elements, "The elements: name, ids, protocol, state",
        query=(("search", "text in the name, AGENT/ELEMENT or protocol"), ("state", "Active, Paused or Stopped"),
               ("protocol", "a protocol name"), ("agent", "an agent id")),
        tag="elements",
    ),  # fmt: skip
    *(
        ApiRoute("POST", f"{E}/{command}", _element_command(command), f"{command.capitalize()} the element", tag="elements")
        for command in ELEMENT_COMMANDS
    ),
    ApiRoute("GET", f"{E}/pages", list_pages, "The element's pages in display order, with their parameters", tag="pages", inline=True),
    ApiRoute("GET", f"{E}/pages/{{page:path}}", get_page, "One page with its parameters and tables (rows come paged)", tag="pages", inline=True),
    ApiRoute("GET", f"{E}/parameters", list_parameters, "Every parameter with its value and display text", tag="parameters", inline=True),
    ApiRoute("GET", f"{E}/parameters/{{parameter:path}}", get_parameter, "A parameter by id or name", tag="parameters", inline=True),
    ApiRoute(
        "PUT", f"{E}/parameters/{{parameter:path}}", set_parameter,
        "Set a write parameter as element.set does: a refused value changes nothing (422 naming the parameter)",
        body='{"value": ...}', tag="parameters",
    ),  # fmt: skip
    ApiRoute("POST", f"{E}/buttons/{{parameter:path}}", press_button, "Press a button (runs its QActions)", tag="parameters"),
    ApiRoute("GET", f"{E}/tables", list_tables, "The element's tables: columns, row counts, display keys", tag="tables", inline=True),
    ApiRoute(
        "GET", f"{E}/tables/{{table}}", get_table, "A page of a table's rows, sorted and filtered",
        query=(("offset", "rows to skip (default 0)"), ("limit", "rows to answer, 1 to 10,000 (default 100)"),
               ("sort", "a column by id, name or position; a leading - sorts descending"), ("order", "asc or desc"),
               ("filter", "COLUMN~TEXT (contains), COLUMN=VALUE, COLUMN!=VALUE, COLUMN>N (>=, <, <=); repeatable"),
               ("search", "text in any column")),
        tag="tables", inline=is_window,
    ),  # fmt: skip
    ApiRoute("GET", f"{E}/tables/{{table}}/rows/{{key:path}}", get_row, "One row in full, with its display key", tag="tables", inline=True),
    ApiRoute(
        "PUT", f"{E}/tables/{{table}}/cells/{{column}}/{{key:path}}", set_cell,
        "Set a cell of a write column as element.set_cell does", body='{"value": ...}', tag="tables",
    ),  # fmt: skip
    ApiRoute("GET", E, get_element, "An element and its pages", tag="elements", inline=True),
    ApiRoute("GET", "/api/alarms", list_active_alarms, "The active alarms, oldest first", query=ALARM_FILTERS, tag="alarms"),
    ApiRoute("GET", "/api/alarms/history", list_alarm_history, "Cleared alarms kept, in the order they cleared", query=ALARM_FILTERS, tag="alarms"),
    ApiRoute("GET", "/api/alarms/{alarm}", get_alarm, "An alarm with its properties and records", tag="alarms", inline=True),
    ApiRoute(
        "GET", "/api/tickets", list_tickets, "Tickets, oldest first",
        query=(("state", "a ticket state, e.g. New"), ("type", "a ticket type"), ("element", "a linked element")), tag="tickets",
    ),  # fmt: skip
    ApiRoute("GET", "/api/tickets/{ticket}", get_ticket, "A ticket", tag="tickets", inline=True),
    ApiRoute("GET", "/api/ticket-types", list_ticket_types, "The ticket types and their fields", tag="tickets"),
    ApiRoute("GET", "/api/automation/scripts", list_scripts, "The registered automation scripts", tag="automation", inline=True),
    ApiRoute(
        "POST", "/api/automation/scripts/{script}/runs", start_run, "Start a registered script", body='{"input": ...} (optional)',
        status=201, tag="automation",
    ),  # fmt: skip
    ApiRoute(
        "GET", "/api/automation/runs", list_runs, "Script runs kept: state, result, error",
        query=(("script", "a script name"), ("state", "running, succeeded or failed")), tag="automation",
    ),  # fmt: skip
    ApiRoute("GET", "/api/automation/runs/{run}", get_run, "A script run", tag="automation", inline=True),
    ApiRoute("GET", "/api/simulators", get_simulators, "The simulators the DMS was served with", tag="simulators"),
    ApiRoute("GET", "/api/simulators/faults", list_faults, "The simulators' faults", tag="simulators"),
    ApiRoute(
        "POST", "/api/simulators/faults", add_faults, "Add a fault (or a list of faults)",
        body='a fault, e.g. {"api": "tmf638", "kind": "status", "status": 503}', status=201, tag="simulators",
    ),  # fmt: skip
    ApiRoute("DELETE", "/api/simulators/faults", clear_faults, "Clear every fault", tag="simulators"),
    ApiRoute(
        "GET", "/api/simulators/requests", list_requests, "The simulators' request log, newest first",
        query=(("api", "one API, e.g. tmf638"), ("offset", "records to skip"), ("limit", "records to answer, 1 to 10,000 (default 100)")),
        tag="simulators",
    ),  # fmt: skip
    ApiRoute("DELETE", "/api/simulators/requests", clear_requests, "Clear the request log", tag="simulators"),
)


def _endpoint(api: Api, route: ApiRoute) -> Callable[[Request], Any]:
    takes_body = route.method in ("PUT", "POST")

    async def endpoint(request: Request) -> Response:
        body = None
        if takes_body:
            raw = await request.body()
            if raw.strip():
                if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                    return error_response(ApiError(415, "body", "the body is JSON: send Content-Type: application/json"))
                try:
                    body = json.loads(raw)
                except ValueError as error:
                    return error_response(ApiError(400, "body", f"the body is no JSON: {error}"))
        try:
            if route.runs_inline(request.query_params):
                data = route.handler(api, dict(request.path_params), request.query_params, body)
            else:
                data = await run_in_threadpool(route.handler, api, dict(request.path_params), request.query_params, body)
        except Exception as error:
            answer = api_error(error, None)
            if answer is None:
                _logger.exception("%s %s failed", request.method, request.url.path)
                answer = ApiError(500, None, f"{type(error).__name__}: {error}")
            return error_response(answer)
        return JsonResponse(data, status_code=route.status, headers={"Cache-Control": "no-store"})

    return endpoint


def _events_endpoint(api: Api) -> Callable[[Request], Any]:
    async def events(request: Request) -> Response:
        element = None
        if request.query_params.get("element"):
            try:
                element = shapes.element_ref(api.element(request.query_params["element"]))
            except ApiError as error:
                return error_response(error)
        types = EVENT_TYPES
        if request.query_params.get("types"):
            types = frozenset(request.query_params["types"].split(","))
            unknown = types - EVENT_TYPES
            if unknown:
                return error_response(ApiError(400, "types", f"unknown event types {sorted(unknown)}; types: {sorted(EVENT_TYPES)}"))
        subscription = api.hub.subscribe(element, types)
        return StreamingResponse(
            stream(api.hub, subscription),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return events


# -- access ------------------------------------------------------------------------------------


class TokenGuard:
    """Lets an ``/api/`` request through only with the server's token in a header, and only from
    the server's own origin; a server without a token (loopback only) checks the Host header,
    so a page on another site cannot reach it through a name that resolves to 127.0.0.1."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api"):
            refusal = self._refusal(scope)
            if refusal is not None:
                headers = {"WWW-Authenticate": 'Bearer realm="dmemu"'} if refusal.status == 401 else {}
                await error_response(refusal, headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> ApiError | None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get("host", "")
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return ApiError(403, "origin", f"requests from {origin} are refused: the API answers its own pages only")
        if not self.token:
            if not is_loopback_host(host_name(host)):  # the rule check_access binds by
                return ApiError(403, "host", f"a server without a token answers requests to loopback only, not to {host!r}")
            return None
        given = headers.get("x-dmemu-token")
        authorization = headers.get("authorization", "")
        if given is None and authorization[:7].lower() == "bearer ":
            given = authorization[7:].strip()
        if not given:
            return ApiError(401, "token", "a token is required: send Authorization: Bearer TOKEN or X-Dmemu-Token: TOKEN")
        if not hmac.compare_digest(given.encode(), self.token):
            return ApiError(401, "token", "the token is wrong")
        return None


# -- the application ---------------------------------------------------------------------------


def create_app(dms: DataMinerSystem, *, token: str, simulators: Any = None, interval: float | None = None) -> Starlette:
    """The API of `dms` as an ASGI application; every ``/api/`` call needs `token` ("" for none:
    `serve` allows that on loopback only). `simulators` (a `dmemu.simulators.Simulators`) adds
    their faults and request log; `interval` is how often live updates are sent at most."""
    from .console import console_routes
    from .openapi import openapi_document

    hub = EventHub(dms) if interval is None else EventHub(dms, interval=interval)
    api = Api(dms, simulators, hub)
    routes = [Route(route.path, _endpoint(api, route), methods=[route.method]) for route in ROUTES]
    routes.append(Route("/api/events", _events_endpoint(api), methods=["GET"]))
    document = openapi_document(ROUTES)

    async def openapi(request: Request) -> Response:
        return JsonResponse(document)

    routes.append(Route("/api/openapi.json", openapi, methods=["GET"]))
    routes += console_routes()
    async def not_routed(request: Request, error: Exception) -> Response:
        status = getattr(error, "status_code", 404)
        reason = f"no route {request.method} {request.url.path}" if status == 404 else f"{request.method} is not allowed on {request.url.path}"
        return error_response(ApiError(status, "path" if status == 404 else "method", reason))

    app = Starlette(routes=_ordered(routes), exception_handlers={404: not_routed, 405: not_routed})
    app.add_middleware(TokenGuard, token=token)
    app.state.hub = hub
    app.state.api = api
    return app


def _ordered(routes: list[Route]) -> list[Route]:
    """Fixed paths before those with a path parameter taking slashes (an element's ``AGENT/ELEMENT``),
    so ``/api/events`` is never read as something else."""
    return sorted(routes, key=lambda route: ":path}" in route.path)
