"""The OpenAPI 3.1 document of the REST API, built from the same route table as the router."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:
    from .app import ApiRoute

_PATH_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")
_DESCRIPTIONS = {
    "element": "AGENT/ELEMENT ids (the slash as it is, e.g. 1/12) or the element's name (URL-encoded)",
    "parameter": "a parameter id or name",
    "table": "a table id or name",
    "column": "a column id, name or 1-based position",
    "key": "a row's primary key",
    "page": "a page name",
    "alarm": "an alarm id",
    "ticket": "a ticket id",
    "script": "a registered script's name",
    "run": "a run id",
}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["field", "reason"],
            "properties": {
                "field": {"type": ["string", "null"], "description": "what was wrong: a parameter's name, a query parameter, element, token ..."},
                "reason": {"type": "string", "description": "why, in the engine's words"},
            },
        }
    },
}


def _object(required: str, **properties: Any) -> dict[str, Any]:
    """An object schema with `properties`, of which the space-separated `required` ones are required."""
    return {"type": "object", "required": required.split(), "properties": properties}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(key: str, item: str) -> dict[str, Any]:
    return _object(f"{key} count", **{key: {"type": "array", "items": _ref(item)}, "count": {"type": "integer"}})


_ANY: dict[str, Any] = {}
_TEXT = {"type": "string"}
_INTEGER = {"type": "integer"}
_TIME = {"type": "number", "description": "epoch seconds of the DMS clock"}
_FLAG = {"type": "boolean"}
_TEXTS = {"type": "array", "items": _TEXT}
_OPTIONAL_TEXT = {"type": ["string", "null"]}
_OPTIONAL_TIME = {"type": ["number", "null"], "description": "epoch seconds of the DMS clock"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Element": _object(
        "ref name agent_id element_id protocol protocol_version state live",
        ref={"type": "string", "description": "AGENT/ELEMENT"}, name=_TEXT, agent_id=_INTEGER, element_id=_INTEGER,
        protocol=_TEXT, protocol_version=_TEXT, state={"enum": ["Active", "Paused", "Stopped"]}, live=_FLAG,
    ),
    "Type": _object(
        "kind allowed",
        kind={"enum": ["number", "datetime", "string", "discrete", "button", "page_button"]}, allowed=_TEXT,
        minimum={"type": ["number", "null"]}, maximum={"type": ["number", "null"]}, decimals=_INTEGER, units=_TEXT,
        max_length={"type": ["integer", "null"]}, secret=_FLAG, label=_TEXT, page=_TEXT,
        options={"type": "array", "items": _object("value display", value=_ANY, display=_TEXT)},
    ),
    "Parameter": _object(
        "id name value display units write secret page type",
        element={"type": "string", "description": "AGENT/ELEMENT"}, id=_INTEGER, name=_TEXT,
        value={"description": "as stored (a password as ********)"}, display={"type": "string", "description": "as the page shows it"},
        units=_TEXT, write=_FLAG, secret=_FLAG, page=_OPTIONAL_TEXT, type=_ref("Type"), description=_TEXT,
    ),
    "Column": _object("id name key write type", id=_INTEGER, name=_TEXT, key=_FLAG, write=_FLAG, type=_ref("Type")),
    "Table": _object(
        "id name page columns row_count display_key",
        id=_INTEGER, name=_TEXT, page=_OPTIONAL_TEXT, columns={"type": "array", "items": _ref("Column")}, row_count=_INTEGER,
        display_key={"oneOf": [{"type": "null"}, _object("columns separator", columns=_TEXTS, separator=_TEXT)]},
    ),
    "Row": _object("key display_key cells display", key=_TEXT, display_key=_TEXT, cells={"type": "array"}, display=_TEXTS),
    "RowInFull": _object(
        "key display_key cells",
        element=_TEXT, table=_INTEGER, key=_TEXT, display_key=_TEXT,
        cells={"type": "array", "items": _object("id name value display", id=_INTEGER, name=_TEXT, value=_ANY, display=_TEXT)},
    ),
    "TableRows": {
        "allOf": [
            _ref("Table"),
            _object(
                "matched offset limit sort descending rows",
                element=_TEXT, matched={"type": "integer", "description": "rows passing the filters"}, offset=_INTEGER,
                limit=_INTEGER, sort=_OPTIONAL_TEXT, descending=_FLAG, rows={"type": "array", "items": _ref("Row")},
            ),
        ]
    },
    "Page": _object(
        "name parent sub_pages parameters tables",
        element=_ref("Element"), name=_TEXT, parent=_OPTIONAL_TEXT, depth=_INTEGER, sub_pages=_TEXTS,
        parameters={"type": "array", "items": _ref("Parameter")}, tables={"type": "array", "items": _ref("Table")},
    ),
    "ElementWithPages": {
        "allOf": [
            _ref("Element"),
            _object(
                "pages",
                pages={
                    "type": "array",
                    "items": _object("name parent depth sub_pages", name=_TEXT, parent=_OPTIONAL_TEXT, depth=_INTEGER, sub_pages=_TEXTS),
                },
            ),
        ]
    },
    "Alarm": _object(
        "id element element_name parameter_id parameter_name row_key severity worst_severity value display active opened "
        "last_change cleared properties records",
        id=_INTEGER, element=_TEXT, element_name=_TEXT, parameter_id=_INTEGER, parameter_name=_TEXT, row_key=_OPTIONAL_TEXT,
        severity={"enum": ["Normal", "Warning", "Minor", "Major", "Critical"]}, worst_severity=_TEXT, value=_ANY,
        display={**_TEXT, "description": "the value as the element's page shows it"}, active=_FLAG,
        opened=_TIME, last_change=_TIME, cleared=_OPTIONAL_TIME, properties={"type": "object", "additionalProperties": _TEXT},
        records={"type": "array", "items": _object(
            "time severity value display reason", time=_TIME, severity=_TEXT, value=_ANY, display=_TEXT, reason=_TEXT,
        )},
    ),
    "Ticket": _object(
        "id type state fields alarms elements created updated",
        id=_TEXT, type=_TEXT, state=_TEXT, fields={"type": "object"}, alarms={"type": "array"},
        elements={"type": "array", "items": {"type": "array", "items": _INTEGER}}, created=_TIME, updated=_TIME,
    ),
    "Run": _object(
        "id script input state result error started finished logs",
        id=_INTEGER, script=_TEXT, input=_ANY, state={"enum": ["running", "succeeded", "failed"]}, result=_ANY,
        error=_OPTIONAL_TEXT, started=_TIME, finished=_OPTIONAL_TIME,
        logs={"type": "array", "items": _object("time type message", time=_TIME, type=_TEXT, message=_TEXT)},
    ),
    "Faults": _object("faults", faults={"type": "array", "items": {"type": "object", "description": "a simulator fault, as /_admin/faults has it"}}),
}
RESPONSES: dict[str, dict[str, Any]] = {
    "get_system": _object(
        "version now clock agents element_count licences scripts simulators",
        version=_TEXT, now=_TIME, clock=_TEXT, agents={"type": "array", "items": _object("id elements", id=_INTEGER, elements=_INTEGER)},
        element_count=_INTEGER, licences=_TEXTS, scripts=_TEXTS, simulators=_FLAG,
    ),
    "list_elements": _list_of("elements", "Element"),
    "get_element": _ref("ElementWithPages"),
    **{f"{command}_element": _ref("Element") for command in ("start", "stop", "pause", "restart")},
    "list_pages": _object("element pages", element=_ref("Element"), pages={"type": "array", "items": _ref("Page")}),
    "get_page": _ref("Page"),
    "list_parameters": _object("element parameters", element=_TEXT, parameters={"type": "array", "items": _ref("Parameter")}),
    "get_parameter": _ref("Parameter"),
    "set_parameter": _ref("Parameter"),
    "press_button": _ref("Parameter"),
    "list_tables": _object("element tables", element=_TEXT, tables={"type": "array", "items": _ref("Table")}),
    "get_table": _ref("TableRows"),
    "get_row": _ref("RowInFull"),
    "set_cell": _ref("RowInFull"),
    "list_active_alarms": _list_of("alarms", "Alarm"),
    "list_alarm_history": _list_of("alarms", "Alarm"),
    "get_alarm": _ref("Alarm"),
    "list_tickets": _list_of("tickets", "Ticket"),
    "get_ticket": _ref("Ticket"),
    "list_ticket_types": _object("types", types={"type": "array", "items": {"type": "object"}}),
    "list_scripts": _object("scripts", scripts=_TEXTS),
    "start_run": _ref("Run"),
    "list_runs": _list_of("runs", "Run"),
    "get_run": _ref("Run"),
    "get_simulators": _object("base_url apis faults requests", base_url=_TEXT, apis=_TEXTS, faults=_INTEGER, requests=_INTEGER),
    "list_faults": _ref("Faults"),
    "add_faults": _ref("Faults"),
    "clear_faults": _ref("Faults"),
    "list_requests": _object(
        "count requests", count=_INTEGER, offset=_INTEGER, limit=_INTEGER,
        requests={"type": "array", "items": {"type": "object", "description": "a request the simulators logged (credentials masked)"}},
    ),
    "clear_requests": _object("count requests", count=_INTEGER, requests={"type": "array"}),
}
"""What each operation answers, by operation id (its handler's name)."""


def openapi_document(routes: Iterable[ApiRoute]) -> dict[str, Any]:
    """The OpenAPI 3 document of `routes`: each route's path parameters, query parameters, body
    and answer schema, plus the event stream and this document; the token as the security scheme
    and the JSON error every route may answer."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = _PATH_PARAMETER.sub(r"{\1}", route.path)
        operation: dict[str, Any] = {
            "operationId": route.handler.__name__,
            "summary": route.summary,
            "tags": [route.tag],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": _DESCRIPTIONS.get(name, name)}
                for name in _PATH_PARAMETER.findall(route.path)
            ]
            + [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text} for name, text in route.query],
            "responses": {
                str(route.status): {"description": "JSON", "content": {"application/json": {"schema": RESPONSES[route.handler.__name__]}}},
                "default": {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        }
        if route.body is not None:
            operation["requestBody"] = {
                "required": route.method == "PUT",
                "description": route.body,
                "content": {"application/json": {"schema": {}}},
            }
        paths.setdefault(path, {})[route.method.lower()] = operation
    paths["/api/events"] = {
        "get": {
            "operationId": "events",
            "summary": "Live updates as server-sent events: parameter, table, alarm, ticket and element events, coalesced "
            "(each thing's latest state at most every few milliseconds; the last value always arrives)",
            "tags": ["events"],
            "parameters": [
                {"name": "element", "in": "query", "required": False, "schema": {"type": "string"}, "description": "only this element's events"},
                {"name": "types", "in": "query", "required": False, "schema": {"type": "string"}, "description": "comma-separated event types"},
            ],
            "responses": {"200": {"description": "an event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
        }
    }
    paths["/api/openapi.json"] = {
        "get": {"operationId": "openapi", "summary": "This document", "tags": ["system"], "responses": {"200": {"description": "OpenAPI"}}}
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "dmemu DataMiner System API", "version": __version__},
        "security": [{"bearer": []}, {"tokenHeader": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the token the server printed at start"},
                "tokenHeader": {"type": "apiKey", "in": "header", "name": "X-Dmemu-Token"},
            },
            "schemas": {"Error": _ERROR, **SCHEMAS},
        },
        "paths": paths,
    }
