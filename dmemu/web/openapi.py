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


def openapi_document(routes: Iterable[ApiRoute]) -> dict[str, Any]:
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
                str(route.status): {"description": "JSON", "content": {"application/json": {"schema": {"type": "object"}}}},
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
            "schemas": {"Error": _ERROR},
        },
        "paths": paths,
    }
