"""TM Forum Open API conventions, independent of HTTP: list queries, filters, fields, errors.

What a TMF v4 server does with ``?offset=&limit=&fields=&attr=value&attr.gte=value``:
filters AND across attributes, a comma means OR, dotted paths reach into objects and lists
(``relatedParty.role=customer`` matches when any related party has that role), and the
operators ``.gt .gte .lt .lte`` compare numbers as numbers, date-times as instants (once the
server has said which attributes are date-times: `Filter.wanted_instant`) and everything else as
text. ``fields=a,b`` keeps ``id``, ``href`` and those first-level attributes.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import attrs

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
OPERATORS = tuple(_COMPARE)


class TmfError(Exception):
    """An error answer: HTTP status plus the TMF error body ``{code, reason, message, status}``."""

    def __init__(self, status: int, reason: str, message: str, code: str | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.code = code or str(status)

    def body(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.reason, "message": self.message, "status": str(self.status)}


def bad_request(message: str) -> TmfError:
    return TmfError(400, "Bad Request", message)


def too_deep() -> TmfError:
    """A body nested deeper than Python's stack reaches: refused as the JSON parser refuses it."""
    return bad_request("the body nests arrays or objects too deeply")


def not_found(what: str, item_id: str) -> TmfError:
    return TmfError(404, "Not Found", f"no {what} with id {item_id!r}")


@attrs.frozen
class Filter:
    """One ``attr[.op]=v1,v2`` term of a list query."""

    path: tuple[str, ...]
    operator: str  # "eq" or one of OPERATORS
    values: tuple[str, ...]
    # For a comparison on a date-time attribute: the value as an instant (`instant`), and the
    # items' values read as instants too (zones and fractions count). Otherwise None: numbers
    # compare as numbers and the rest as text.
    wanted_instant: float | None = None

    def matches(self, item: Mapping[str, Any]) -> bool:
        return any(self._matches_value(value) for value in _values_at(item, self.path))

    def _matches_value(self, value: Any) -> bool:
        if isinstance(value, (dict, list)):
            return False
        if self.operator == "eq":
            return _text(value) in self.values
        if self.wanted_instant is not None:
            left, right = instant(value), self.wanted_instant
        else:
            left, right = _comparable(value, self.values[0])
        if left is None:
            return False
        return _COMPARE[self.operator](left, right)


@attrs.frozen
class ListQuery:
    offset: int = 0
    limit: int | None = None
    fields: tuple[str, ...] | None = None
    filters: tuple[Filter, ...] = ()

    def matches(self, item: Mapping[str, Any]) -> bool:
        return all(term.matches(item) for term in self.filters)


def parse_list_query(params: Iterable[tuple[str, str]], *, vendor: Iterable[str] = ()) -> tuple[ListQuery, dict[str, str]]:
    """The TMF part of a query string, and the vendor parameters (named in `vendor`) apart.

    Raises `TmfError` 400 naming the parameter for a malformed offset, limit or operator.
    """
    vendor_names = set(vendor)
    offset, limit, fields = 0, None, None
    filters: list[Filter] = []
    vendor_values: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in params:
        if name in vendor_names or name in ("offset", "limit", "fields"):
            if name in seen:  # which one would count is anyone's guess: say so rather than pick
                raise bad_request(f"{name} is given more than once")
            seen.add(name)
        if name in vendor_names:
            vendor_values[name] = value
        elif name == "offset":
            offset = non_negative_int(name, value)
        elif name == "limit":
            limit = non_negative_int(name, value)
        elif name == "fields":
            fields = tuple(part.strip() for part in value.split(",") if part.strip())
            if not fields:
                raise bad_request("fields: give at least one attribute name")
        else:
            filters.append(_parse_filter(name, value))
    return ListQuery(offset, limit, fields, tuple(filters)), vendor_values


def select_fields(item: Mapping[str, Any], fields: tuple[str, ...] | None) -> dict[str, Any]:
    """`item` reduced to ``id``, ``href`` and the requested first-level attributes."""
    if fields is None:
        return dict(item)
    kept = {"id", "href", *fields}
    return {name: value for name, value in item.items() if name in kept}


def item_href(collection_url: str, item_id: str) -> str:
    """``<collection_url>/<id>``, the id percent-encoded (a client may create "a b" or "a/b"; and
    "." or "..", which clients would read as the collection or its parent unless encoded too)."""
    segment = quote(item_id, safe="")
    return f"{collection_url.rstrip('/')}/{segment.replace('.', '%2E') if item_id in ('.', '..') else segment}"


def homed(item: Mapping[str, Any], collection_url: str | None) -> dict[str, Any]:
    """A copy of a stored item to answer with: its href under `collection_url` (``<url>/<id>``) when given.

    The same item is served at more than one path (TMF v4 and SES); each answer points where it was asked."""
    if collection_url is None:
        return dict(item)
    return {**item, "href": item_href(collection_url, item["id"])}


def copied(item: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a stored item, to merge a patch into. Through JSON, as the item came: a
    body nested as deep as the parser took copies, where copy.deepcopy runs out of stack first."""
    return json.loads(json.dumps(item))


def merge_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386 merge patch, in place: null removes, objects merge, anything else replaces."""
    for name, value in patch.items():
        if value is None:
            target.pop(name, None)
        elif isinstance(value, dict):
            if not isinstance(target.get(name), dict):
                target[name] = {}  # RFC 7386: an object patch over a non-object starts empty
            merge_patch(target[name], value)
        else:
            target[name] = value


def non_negative_int(name: str, value: str) -> int:
    """A query parameter that counts something; 400 naming it otherwise."""
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f"{name}={value!r} is not a whole number") from None
    if number < 0:
        raise bad_request(f"{name}={value!r} must not be negative")
    return number


def _parse_filter(name: str, value: str) -> Filter:
    if not name or name.startswith(".") or name.endswith(".") or ".." in name:
        raise bad_request(f"filter {name!r} is not an attribute path")
    parts = tuple(name.split("."))
    comparison = "eq"
    if len(parts) > 1 and parts[-1] in OPERATORS:
        comparison, parts = parts[-1], parts[:-1]
        if "," in value:
            raise bad_request(f"{name}={value!r}: a comparison takes one value")
    values = tuple(value.split(","))
    if any(v == "" for v in values) and comparison != "eq":
        raise bad_request(f"{name}: empty value to compare with")
    return Filter(parts, comparison, values)


def _values_at(item: Any, path: tuple[str, ...]) -> list[Any]:
    """Every value reached by following `path`, stepping into lists along the way."""
    current = [item]
    for part in path:
        following: list[Any] = []
        for node in current:
            if isinstance(node, list):
                node_items = node
            else:
                node_items = [node]
            for element in node_items:
                if isinstance(element, dict) and part in element:
                    following.append(element[part])
        current = following
    flat: list[Any] = []
    for value in current:
        flat.extend(value if isinstance(value, list) else [value])
    return flat


# RFC 3339: a date, then (optionally here: a date alone is its midnight UTC) a time to the second,
# any fraction, and a zone. Read by hand: Python 3.10's fromisoformat takes neither "Z" nor most fractions.
_DATE_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?(?:([Zz])|([+-])(\d\d):(\d\d)))?", re.ASCII
)


def instant(value: Any, *, date_alone: bool = True) -> float | None:
    """Epoch seconds of an RFC 3339 date-time (or, with `date_alone`, a date: its midnight UTC);
    None for anything else, a 30 February or an hour 25 included."""
    match = _DATE_TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None or (match[4] is None and not date_alone) or (match[11] is not None and int(match[11]) > 59):
        return None
    year, month, day, hour, minute, second, fraction, _, sign, zone_hours, zone_minutes = match.groups()
    try:
        zone = dt.timezone.utc
        if sign is not None:
            zone = dt.timezone((1 if sign == "+" else -1) * dt.timedelta(hours=int(zone_hours), minutes=int(zone_minutes)))
        moment = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=zone)
    except ValueError:
        return None
    return moment.timestamp() + (float(fraction) if fraction else 0.0)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _comparable(value: Any, wanted: str) -> tuple[Any, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return value, float(wanted)
        except ValueError:
            return None, None
    return _text(value), wanted
