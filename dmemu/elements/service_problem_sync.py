"""The synchronisation core both Service Problem Management connectors share: DataMiner
Ticketing tickets of the connector's ticket type kept in step with TMF656 service problems.

The two connectors (`ses_service_problems`, `tm_forum_service_problems`) differ only by a
`Flavour`: the API base path, how changes are asked for (ServiceNow's encoded query on the SES
path, the standard v4 ``lastUpdate.gte`` filter on the TM Forum path), whether problems created
by ServiceNow users are imported, and the TM Forum branch's custom attributes.

**A cycle** (every *Ticket Synchronization Frequency* seconds, or *Synchronize Now*):

1. Inbound: the problems changed since the watermark, paged, ``>=`` the watermark so records
   stamped in the watermark's own second are never skipped, de-duplicated by id (the last copy
   wins), applied in (lastUpdate, id) order. A record is matched to its ticket by service
   problem id, else by the DataMiner ticket id it carries (`CORRELATION_TYPE`), else imported
   (when *Import Upstream Problems* is on). The watermark moves to the newest lastUpdate seen.
2. Outbound creates: tickets not yet upstream (Creation Status None) are POSTed, up to
   `PARALLEL_CREATES` at a time; Buffered while in flight; Created with the answer; back to None
   on any failure, so the next cycle retries. A ticket whose earlier attempt may have reached the
   server (no answer, a dropped connection, a timeout, a 5xx, a 429), and after a start every
   ticket not yet Created (the process before may have sent it), is first looked up by its
   DataMiner ticket id, which every create carries, so no ticket ever gets a second problem.
3. Outbound changes: what changed on a ticket since the last agreement is merge-patched; a
   ticket Resolved or Closed patches its problem to ``resolved``.

**Field ownership.** The table keeps, per ticket, the values both sides last agreed on (the
baseline). A field changed on one side only travels to the other. A field changed on both sides
since the last cycle is settled by its owner:

=======================================================  ==========================================
Field                                                    Owner when both changed it
=======================================================  ==========================================
Category, Description, Reason, Affected Service,         DataMiner (the detection knows the facts)
Affected Resource, Originator
Priority, Responsible Party                              ServiceNow (operators triage there)
Notes                                                    neither: the two lists are merged
State                                                    ServiceNow, except that a DataMiner
                                                         Resolved or Closed wins over a working
                                                         state upstream (the cause is gone);
                                                         a final upstream state always wins
Status, Service Problem ID, Incident Number and Link     ServiceNow only (DataMiner shows them)
Custom attributes                                        as the customer profile declares each
=======================================================  ==========================================

A change applied from upstream becomes the baseline at once, so the ticket event it causes is
not sent back (no echo loops). Tables and tickets keep their content on any failure; a value
upstream sends that the ticket type refuses is logged, shown in that ticket's Last Error, and
the ticket keeps its last good value while the rest of the cycle goes on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import attrs
import requests

from dmemu.dms import TICKET_TRANSITIONS, TicketField, TicketState, TicketType
from dmemu.protocol import (
    Button,
    Column,
    DateTime,
    Discrete,
    DmemuError,
    ElementState,
    LogType,
    Number,
    Page,
    Parameter,
    QAction,
    QActionProtocol,
    String,
    Table,
    Timer,
)

PARALLEL_CREATES = 5  # POSTs in flight at once (later SES versions: up to 5 parallel connections)
CORRELATION_TYPE = "DataMinerTicketId"  # the externalIdentifier type carrying the DMS ticket id
INCIDENT_NUMBER_TYPE, INCIDENT_LINK_TYPE = "incidentNumber", "incidentLink"
ORIGINATING_SYSTEM = "dataminer"  # ServiceNow's u_source of the problems DataMiner creates
TICKETING_LICENCE = "Ticketing"
_ERROR_TEXT_LIMIT = 200

# Made once: json.dumps with any option builds a new encoder at every call, and these run per
# ticket. The request bodies are what requests' ``json=`` sends (it refuses NaN likewise).
_BODY_ENCODER = json.JSONEncoder(allow_nan=False)
_INFO_ENCODER = json.JSONEncoder(ensure_ascii=False)
_BASELINE_ENCODER = json.JSONEncoder(sort_keys=True)

# Creation Status (REFERENCE §3): None -> Buffered -> Created, back to None on failure
NONE, BUFFERED, CREATED = 0, 1, 2
# API communication states, as the inventory connector's
NOT_POLLED, OK, AUTHENTICATION_FAILED, TIMEOUT, CONNECTION_FAILED, HTTP_ERROR, INVALID_RESPONSE, RATE_LIMITED = range(8)
DISABLED, ENABLED = 0, 1

PRIORITIES = tuple(str(n) for n in range(1, 11))  # TMF656: 1 (highest) to 10
UPSTREAM_STATUSES = ("acknowledged", "rejected", "pending", "held", "inProgress", "resolved", "cancelled", "closed")
FINAL_UPSTREAM = frozenset({"closed", "cancelled", "rejected"})

# DMS ticket state <-> TMF656 status
STATE_OF_STATUS = {
    "acknowledged": "Assigned", "inProgress": "In Progress", "pending": "On Hold", "held": "On Hold",
    "resolved": "Resolved", "closed": "Closed", "cancelled": "Closed", "rejected": "Closed",
}  # fmt: skip
STATUS_OF_STATE = {"In Progress": "inProgress", "On Hold": "held", "Resolved": "resolved", "Closed": "resolved"}
"""What a DMS state asks upstream; New and Assigned ask nothing (a problem starts acknowledged)."""


def states_agree(state: str, status: str) -> bool:
    """Whether a ticket state and a problem status say the same thing: a DMS-closed ticket and a
    resolved problem agree (ServiceNow closes it in its own time), as do New and acknowledged."""
    return STATE_OF_STATUS.get(status) == state or (state, status) in {("Closed", "resolved"), ("New", "acknowledged")}


# --------------------------------------------------------------------------------------------
# Fields: the ticket type, and how each field travels in a service problem


@attrs.frozen
class CustomAttribute:
    """A customer's own attribute (the TM Forum branch): a ticket field and a table column,
    carried in a ``characteristic`` entry or as a top-level extension attribute under `at_type`."""

    name: str  # as it travels upstream
    kind: str  # "string", "number", "enum" or "date"
    field: str  # the DMS ticket field
    column_id: int
    travels: str = "characteristic"  # or "extension"
    values: tuple[str, ...] = attrs.field(default=(), converter=tuple)  # of an enum
    at_type: str | None = None  # the @type that declares an extension attribute
    owner: str = "servicenow"  # who wins when both sides changed it: "servicenow" or "dataminer"


OWNED_BY_DATAMINER = frozenset({"Category", "Description", "Reason", "Affected Service", "Affected Resource", "Originator"})
OWNED_BY_SERVICENOW = frozenset({"Priority", "Responsible Party"})
NOTES = "Notes"
UPSTREAM_ONLY = ("Status", "Service Problem ID", "Incident Number", "Incident Link")


def ticket_type(name: str, custom: Sequence[CustomAttribute] = ()) -> TicketType:
    """The connector's ticket type: what a service problem carries that a person works with."""
    fields = [
        TicketField("Category", "string", required=True, default="service problem"),
        TicketField("Priority", "enum", values=PRIORITIES, required=True, default="5"),
        TicketField("Description", "string", required=True),
        TicketField("Reason", "string", required=True, default="raised by DataMiner"),
        TicketField("Affected Service", "string"),
        TicketField("Affected Resource", "string"),
        TicketField("Originator", "string", required=True, default="DataMiner"),
        TicketField("Responsible Party", "string"),
        TicketField(NOTES, "json"),
        TicketField("Status", "enum", values=UPSTREAM_STATUSES),
        TicketField("Service Problem ID", "string"),
        TicketField("Incident Number", "string"),
        TicketField("Incident Link", "string"),
    ]
    fields += [TicketField(a.field, a.kind, values=a.values) if a.kind == "enum" else TicketField(a.field, a.kind) for a in custom]
    return TicketType(name, tuple(fields))


class BadUpstreamValue(ValueError):
    """A value in a service problem that its ticket field cannot take."""


def _party(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("name") or value.get("id")
    return None


def _ids(values: Any) -> str | None:
    if not isinstance(values, list) or not values:
        return None
    return ", ".join(str(value.get("id")) for value in values if isinstance(value, dict) and value.get("id"))


def _refs(text: Any, referred_type: str) -> list[dict[str, Any]]:
    return [{"id": part.strip(), "@referredType": referred_type} for part in str(text or "").split(",") if part.strip()]


def _note_key(note: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(note.get("date") or ""), str(note.get("author") or ""), str(note.get("text") or ""))


def _notes(values: Any) -> list[dict[str, str]]:
    """Notes as a sorted list without duplicates: the form both sides are compared in."""
    if not isinstance(values, list):
        return []
    unique = {_note_key(note): note for note in values if isinstance(note, dict)}
    return [{"date": key[0], "author": key[1], "text": key[2]} for key in sorted(unique)]


def _utc(text: Any) -> float | None:
    """Epoch seconds of an RFC 3339 time (Python 3.10's fromisoformat takes no ``Z``)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo else None


def _identifier(problem: Mapping[str, Any], kind: str) -> str | None:
    for entry in problem.get("externalIdentifier") or ():
        if isinstance(entry, dict) and entry.get("externalIdentifierType") == kind and entry.get("id"):
            return str(entry["id"])
    return None


def _custom_upstream(attribute: CustomAttribute, problem: Mapping[str, Any]) -> Any:
    if attribute.travels == "extension":
        return problem.get(attribute.name)
    for entry in problem.get("characteristic") or ():
        if isinstance(entry, dict) and entry.get("name") == attribute.name:
            return entry.get("value")
    return None


def _custom_checked(attribute: CustomAttribute, value: Any) -> Any:
    """The ticket field value of an upstream custom value; `BadUpstreamValue` when it cannot be."""
    if value is None:
        return None
    if attribute.kind == "number":
        if type(value) not in (int, float):
            raise BadUpstreamValue(f"{attribute.name} {value!r} is not a number")
        return value
    if not isinstance(value, str):
        raise BadUpstreamValue(f"{attribute.name} {value!r} is not text")
    if attribute.kind == "enum" and value not in attribute.values:
        raise BadUpstreamValue(f"{attribute.name} {value!r} is not one of {', '.join(attribute.values)}")
    if attribute.kind == "date":
        stamp = _utc(value)
        if stamp is None:
            raise BadUpstreamValue(f"{attribute.name} {value!r} is not a date-time with a zone")
        return _iso(stamp)
    return value


def _iso(stamp: float) -> str:
    """A time as DMS Ticketing stores dates (UTC, milliseconds), so values compare as text."""
    moment = dt.datetime.fromtimestamp(stamp, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def fields_of_problem(problem: Mapping[str, Any], custom: Sequence[CustomAttribute]) -> tuple[dict[str, Any], list[str]]:
    """(ticket field values, refusals) of a service problem; a refused value is left out."""
    problems: list[str] = []
    values: dict[str, Any] = {
        "Category": problem.get("category"),
        "Description": problem.get("description"),
        "Reason": problem.get("reason"),
        "Affected Service": _ids(problem.get("affectedService")),
        "Affected Resource": _ids(problem.get("affectedResource")),
        "Originator": _party(problem.get("originatorParty")),
        "Responsible Party": _party(problem.get("responsibleParty")),
        NOTES: _notes(problem.get("note")),
        "Status": problem.get("status"),
        "Service Problem ID": problem.get("id"),
        "Incident Number": _identifier(problem, INCIDENT_NUMBER_TYPE),
        "Incident Link": _identifier(problem, INCIDENT_LINK_TYPE),
    }
    priority = problem.get("priority")
    if type(priority) is int and 1 <= priority <= 10:
        values["Priority"] = str(priority)
    else:
        problems.append(f"priority {priority!r} is not an integer from 1 to 10")
    if values["Status"] not in UPSTREAM_STATUSES:
        problems.append(f"status {values['Status']!r} is not a TMF656 status")
        del values["Status"]
    for name in ("Category", "Description", "Reason"):
        if not isinstance(values[name], str):
            problems.append(f"{name.lower()} {values[name]!r} is not text")
            del values[name]
    for attribute in custom:
        try:
            values[attribute.field] = _custom_checked(attribute, _custom_upstream(attribute, problem))
        except BadUpstreamValue as error:
            problems.append(str(error))
    return values, problems


def fields_of_ticket(ticket: Any) -> dict[str, Any]:
    values = ticket.fields.to_dict()
    values[NOTES] = _notes(values.get(NOTES))
    return values


def problem_changes(values: Mapping[str, Any], custom: Sequence[CustomAttribute], *, creating: bool) -> dict[str, Any]:
    """The service problem attributes of ticket field `values` (a merge patch, or a create body)."""
    body: dict[str, Any] = {}
    simple = {"Category": "category", "Description": "description", "Reason": "reason"}
    for field, attribute in simple.items():
        if field in values:
            body[attribute] = values[field]
    if "Priority" in values and values["Priority"] is not None:
        body["priority"] = int(values["Priority"])
    if "Affected Service" in values:
        body["affectedService"] = _refs(values["Affected Service"], "Service")
    if "Affected Resource" in values:
        body["affectedResource"] = _refs(values["Affected Resource"], "Resource")
    if "Originator" in values:
        name = values["Originator"] or "DataMiner"
        body["originatorParty"] = {"id": name, "name": name, "@referredType": "Organization"}
    if "Responsible Party" in values:
        name = values["Responsible Party"]
        body["responsibleParty"] = {"id": name, "name": name, "@referredType": "Organization"} if name else None
    if NOTES in values:
        body["note"] = [dict(note) for note in values[NOTES] or ()]
    characteristics = [a for a in custom if a.travels == "characteristic" and a.field in values]
    if characteristics:
        # A merge patch replaces a list whole: the patch carries every characteristic value.
        body["characteristic"] = [
            {"name": a.name, "value": values[a.field], "valueType": "number" if a.kind == "number" else "string"}
            for a in characteristics
            if values[a.field] is not None
        ]
    for attribute in custom:
        if attribute.travels == "extension" and attribute.field in values:
            body[attribute.name] = values[attribute.field]
    extension_types = sorted({a.at_type for a in custom if a.travels == "extension" and a.at_type})
    if creating and extension_types:
        body["@type"] = extension_types[0]
        body["@baseType"] = "ServiceProblem"
    if creating:
        body = {k: v for k, v in body.items() if v is not None and v != []}
    return body


# --------------------------------------------------------------------------------------------
# The connector's flavour


@attrs.frozen
class Flavour:
    """What sets the two connectors apart."""

    name: str  # shown in logs
    ticket_type: str
    default_base_path: str
    servicenow_query: bool  # SES: sysparm_query; TM Forum: the v4 lastUpdate.gte filter
    import_default: int  # Import Upstream Problems' default
    custom: tuple[CustomAttribute, ...] = ()

    def owner(self, field: str) -> str:
        if field in OWNED_BY_DATAMINER:
            return "dataminer"
        for attribute in self.custom:
            if attribute.field == field:
                return attribute.owner
        return "servicenow"

    synced_fields: tuple[str, ...] = attrs.field(init=False)
    """The ticket fields that travel both ways (the upstream-only ones come down only)."""

    @synced_fields.default
    def _synced_fields(self) -> tuple[str, ...]:
        return (*sorted(OWNED_BY_DATAMINER), *sorted(OWNED_BY_SERVICENOW), NOTES, *(a.field for a in self.custom))


# --------------------------------------------------------------------------------------------
# Talking to the API


class _ApiFailed(Exception):
    """This request failed: `state` (the API Communication Status) and `http_status` (0 when no
    answer came) say how. `maybe_done`: the server may have acted on it anyway."""

    def __init__(
        self, message: str, *, state: int, maybe_done: bool, http_status: int = 0, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.state = state
        self.http_status = http_status
        self.maybe_done = maybe_done
        self.retry_after = retry_after


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[: _ERROR_TEXT_LIMIT - 3] + "..."


class _Api:
    """The TMF656 collection at the configured base path, with the element's connection."""

    def __init__(self, protocol: QActionProtocol) -> None:
        base = str(protocol.get_parameter("API Base Path") or "").strip().strip("/")
        self.collection = f"/{base}/serviceProblem" if base else "/serviceProblem"
        user, password = protocol.get_parameter("Username"), protocol.get_parameter("Password")
        self.auth = (user, password or "") if user else None
        self.session = protocol.http
        self.masked = protocol.masked

    def call(self, method: str, path: str = "", *, body: Any = None, **kwargs: Any) -> Any:
        """The JSON answer of one request (with `body` sent as JSON, when given); `_ApiFailed`
        for anything but a 2xx with JSON."""
        where = f"{method} {self.collection}{path}"
        headers = None
        if body is not None:
            headers = {"Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json"}
            kwargs["data"] = _BODY_ENCODER.encode(body).encode()
        try:
            response = self.session.request(method, self.collection + path, auth=self.auth, headers=headers, **kwargs)
        except requests.Timeout:
            raise _ApiFailed(f"{where}: no answer within {self.session.timeout:g} s", state=TIMEOUT, maybe_done=True) from None
        except requests.RequestException as error:
            reason = getattr(error.args[0], "reason", None) if error.args else None
            raise _ApiFailed(f"{where}: connection failed: {_cut(str(reason or error))}", state=CONNECTION_FAILED, maybe_done=True) from None
        status = response.status_code
        if status in (401, 403):
            raise _ApiFailed(f"{where}: {status} {response.reason}: check the username and password", state=AUTHENTICATION_FAILED, http_status=status, maybe_done=False) from None
        if status == 429:
            retry_after = response.headers.get("Retry-After", "").strip()
            seconds = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
            raise _ApiFailed(f"{where}: 429 Too Many Requests (Retry-After {retry_after or 'not given'})", state=RATE_LIMITED, http_status=429, maybe_done=False, retry_after=seconds)
        if not 200 <= status < 300:
            # A 5xx may come after the server acted; a 4xx means it refused.
            raise _ApiFailed(f"{where}: {status} {response.reason}: {_cut(self.masked(response.text))}", state=HTTP_ERROR, http_status=status, maybe_done=status >= 500)
        try:
            return response.json(), response
        except ValueError as error:
            raise _ApiFailed(f"{where}: malformed JSON ({error})", state=INVALID_RESPONSE, http_status=status, maybe_done=True) from None


_STATUS_NAMES = {
    NOT_POLLED: "Not Polled", OK: "OK", AUTHENTICATION_FAILED: "Authentication Failed", TIMEOUT: "Timeout",
    CONNECTION_FAILED: "Connection Failed", HTTP_ERROR: "HTTP Error", INVALID_RESPONSE: "Invalid Response", RATE_LIMITED: "Rate Limited",
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# The managed tickets table and its bookkeeping

TICKETS = "Managed Tickets"
BASELINE = "Sync Baseline"
(C_ID, C_INFO, C_PROBLEM, C_INCIDENT, C_LINK, C_CREATION, C_DMS_STATE, C_STATUS, C_SYNCED, C_ERROR, C_ATTEMPTS) = range(11)


@attrs.define
class _Row:
    """One managed ticket: the table row and what both sides last agreed on."""

    ticket_id: str
    problem_id: str = ""
    incident: str = ""
    link: str = ""
    creation: int = NONE
    dms_state: str = ""
    status: str = ""
    synced: float | None = None
    error: str = ""
    attempts: int = 0
    info: str = ""
    custom: dict[str, Any] = attrs.Factory(dict)
    # the baseline: field values, DMS state and upstream status both sides last agreed on
    agreed: dict[str, Any] = attrs.Factory(dict)
    agreed_state: str = ""
    agreed_status: str = ""
    upstream_update: str = ""  # lastUpdate of the last record applied
    changed: bool = True

    def cells(self, custom: Sequence[CustomAttribute]) -> list[Any]:
        return [
            self.ticket_id, self.info, self.problem_id, self.incident, self.link, self.creation, self.dms_state, self.status,
            self.synced, self.error, self.attempts, *(self.custom.get(a.field) for a in custom),
        ]  # fmt: skip

    def baseline_cells(self) -> list[Any]:
        return [self.ticket_id, _BASELINE_ENCODER.encode(self.agreed), self.agreed_state, self.agreed_status, self.upstream_update]


def _custom_cell(attribute: CustomAttribute, value: Any) -> Any:
    if value is None or attribute.kind != "number":
        return None if value is None else str(value)
    return value


def _load_rows(protocol: QActionProtocol, custom: Sequence[CustomAttribute]) -> dict[str, _Row]:
    rows: dict[str, _Row] = {}
    for cells in _table_rows(protocol, TICKETS, C_ATTEMPTS + 1 + len(custom)):
        key = cells[C_ID]
        rows[key] = _Row(
            key, cells[C_PROBLEM] or "", cells[C_INCIDENT] or "", cells[C_LINK] or "", int(cells[C_CREATION] or NONE),
            cells[C_DMS_STATE] or "", cells[C_STATUS] or "", cells[C_SYNCED], cells[C_ERROR] or "", int(cells[C_ATTEMPTS] or 0),
            cells[C_INFO] or "", {a.field: cells[C_ATTEMPTS + 1 + i] for i, a in enumerate(custom)}, changed=False,
        )  # fmt: skip
    for key, agreed, state, status, update in _table_rows(protocol, BASELINE, 5):
        row = rows.get(key)
        if row is not None:
            row.agreed, row.agreed_state, row.agreed_status, row.upstream_update = json.loads(agreed or "{}"), state or "", status or "", update or ""
    return rows


def _table_rows(protocol: QActionProtocol, table: str, width: int) -> Iterable[tuple[Any, ...]]:
    """The rows' cells, read a column at a time (one lookup per column, not per row)."""
    return zip(*(protocol.get_column(table, position).values() for position in range(1, width + 1)))


def _save_rows(protocol: QActionProtocol, rows: Iterable[_Row], custom: Sequence[CustomAttribute]) -> None:
    changed = [row for row in rows if row.changed]
    if changed:
        protocol.fill_array_no_delete(TICKETS, [row.cells(custom) for row in changed])
        protocol.fill_array_no_delete(BASELINE, [row.baseline_cells() for row in changed])
        for row in changed:
            row.changed = False


def _info(ticket: Any) -> str:
    return _info_text(ticket.type, ticket.state.value, ticket.fields)


def _info_text(type_name: str, state: str, fields: Mapping[str, Any]) -> str:
    """Ticket Info: what a person needs to recognise the ticket, as JSON (from a `Ticket`, or
    from the ticket record a ticket event carries)."""
    return _INFO_ENCODER.encode(
        {"type": type_name, "state": state, "priority": fields.get("Priority"), "description": fields.get("Description")}
    )


# --------------------------------------------------------------------------------------------
# One synchronisation cycle


class _Cycle:
    def __init__(self, flavour: Flavour, protocol: QActionProtocol) -> None:
        self.flavour = flavour
        self.protocol = protocol
        self.tickets = protocol.tickets
        self.api = _Api(protocol)
        self.rows = _load_rows(protocol, flavour.custom)
        self.by_problem = {row.problem_id: row for row in self.rows.values() if row.problem_id}
        self.counts = {"created": 0, "updated": 0, "closed": 0, "imported": 0, "applied": 0}
        self.failures: list[str] = []
        self.retry_at: float | None = None
        self.created_ok = False  # the API status is written once for all the creates that went well
        self.counting = threading.Lock()

    # -- status -----------------------------------------------------------------------------

    def api_status(self, state: int, http_status: int, error: str) -> None:
        now = self.protocol.now()
        values: dict[int | str, Any] = {
            "API Communication Status": state, "Last HTTP Status": http_status, "Last API Error": self.protocol.masked(error),
            "Last API Attempt": now,
        }  # fmt: skip
        if state == OK:
            values["Last API Success"] = now
        self.protocol.set_parameters(values)

    def failed(self, error: _ApiFailed, row: _Row | None = None) -> None:
        message = self.protocol.masked(str(error))
        self.api_status(error.state, error.http_status, message)
        self.protocol.log(f"{self.flavour.name}: {message}", LogType.ERROR)
        self.failures.append(message)
        self.hold_for(error)
        if row is not None:
            row.error, row.changed = message, True

    def hold_for(self, error: _ApiFailed) -> None:
        """After a 429, nothing more is sent before its Retry-After has passed. Only ever later:
        the requests refused meanwhile ("not sent", retry_after 0) on other workers must not
        bring the time back to now."""
        if error.retry_after is None:
            return
        until = self.protocol.now() + error.retry_after
        with self.counting:
            if self.retry_at is None or until > self.retry_at:
                self.retry_at = until

    # -- the DMS side -----------------------------------------------------------------------

    def row_for_ticket(self, ticket: Any) -> _Row:
        row = self.rows.get(ticket.id)
        if row is None:
            row = self.rows[ticket.id] = _Row(ticket.id)
        row.info, row.dms_state, row.changed = _info(ticket), ticket.state.value, True
        return row

    def reconcile(self) -> dict[str, Any]:
        """Every ticket of the type, by id; tickets the table does not hold yet get a row (events
        missed while the element was stopped)."""
        tickets = {ticket.id: ticket for ticket in self.tickets.query(type=self.flavour.ticket_type)}
        for ticket in tickets.values():
            row = self.rows.get(ticket.id)
            if row is None or row.dms_state != ticket.state.value:
                self.row_for_ticket(ticket)
        return tickets

    def update_ticket(
        self, row: _Row, ticket: Any, values: Mapping[str, Any], state: str | None, current: Mapping[str, Any] | None = None
    ) -> Any:
        """Apply upstream values (and a state) to the ticket: each refused value is left out and
        noted on the row; the state moves by the ways DMS Ticketing allows. `current`: the
        ticket's fields, when the caller has them already."""
        current = fields_of_ticket(ticket) if current is None else current
        fields = {name: value for name, value in values.items() if current.get(name) != value}
        target = None if state is None or state == ticket.state.value else TicketState(state)
        direct = target is not None and target in TICKET_TRANSITIONS[ticket.state]
        if fields or direct:
            try:
                # One update, one event, where DMS Ticketing allows the move in one step.
                ticket = self.tickets.update(ticket.id, fields, state=target if direct else None)
            except DmemuError:
                for name, value in fields.items():  # find which value is refused; keep the rest
                    try:
                        self.tickets.update(ticket.id, {name: value})
                    except DmemuError as error:
                        self.note_refusal(row, f"{name}: {error}")
                ticket = self.tickets.get(ticket.id)
        if target is not None and ticket.state is not target:
            ticket = self.move(ticket, state)
        return ticket

    def move(self, ticket: Any, state: str) -> Any:
        """Move the ticket to `state` by the ways DMS Ticketing allows (reopening a closed one)."""
        target = TicketState(state)
        current = ticket.state
        if current is TicketState.CLOSED or (current is TicketState.RESOLVED and target not in TICKET_TRANSITIONS[current]):
            working = target if target in (TicketState.ASSIGNED, TicketState.IN_PROGRESS, TicketState.ON_HOLD) else TicketState.IN_PROGRESS
            ticket = self.tickets.reopen(ticket.id, working)
            current = ticket.state
        if current is not target:
            if target not in TICKET_TRANSITIONS[current]:
                ticket = self.tickets.update(ticket.id, state=TicketState.IN_PROGRESS)
            ticket = self.tickets.update(ticket.id, state=target)
        return ticket

    def note_refusal(self, row: _Row, message: str) -> None:
        text = f"upstream value refused: {message}"
        self.protocol.log(f"{self.flavour.name}: ticket {row.ticket_id} (problem {row.problem_id}): {text}", LogType.ERROR)
        row.error, row.changed = _cut(text), True

    # -- inbound ----------------------------------------------------------------------------

    def poll(self) -> list[dict[str, Any]]:
        """The problems changed since the watermark, each once (the last copy), in applying order."""
        watermark = self.protocol.get_parameter("Inbound Watermark")
        params = self.change_query(watermark)
        page_size = int(self.protocol.get_parameter("Records Per Page"))
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            payload, response = self.api.call("GET", params={**params, "offset": str(offset), "limit": str(page_size)})
            if not isinstance(payload, list):
                raise _ApiFailed(f"GET {self.api.collection}: the answer is a JSON {type(payload).__name__}, not a list", state=INVALID_RESPONSE, maybe_done=False)
            for record in payload:
                if isinstance(record, dict) and isinstance(record.get("id"), str) and record["id"]:
                    found[record["id"]] = record
            total = response.headers.get("X-Total-Count", "")
            offset += len(payload)
            if not payload or len(payload) < page_size or (total.isdigit() and offset >= int(total)):
                break
        self.api_status(OK, response.status_code, "")
        return sorted(found.values(), key=lambda record: (_utc(record.get("lastUpdate")) or 0.0, record["id"]))

    def change_query(self, watermark: float | None) -> dict[str, str]:
        imports = self.protocol.get_parameter("Import Upstream Problems") == ENABLED
        if self.flavour.servicenow_query:
            terms = [] if imports else [f"u_source={ORIGINATING_SYSTEM}"]
            if watermark is not None:
                terms.append("sys_updated_on>=" + dt.datetime.fromtimestamp(int(watermark), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"))
            terms.append("ORDERBYsys_updated_on")
            return {"sysparm_query": "^".join(terms)}
        params = {} if imports else {"originatingSystem": ORIGINATING_SYSTEM}
        if watermark is not None:
            params["lastUpdate.gte"] = dt.datetime.fromtimestamp(int(watermark), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return params

    def apply(self, record: dict[str, Any], tickets: dict[str, Any]) -> None:
        row = self.by_problem.get(record["id"])
        if row is None:
            correlation = _identifier(record, CORRELATION_TYPE)
            row = self.rows.get(correlation) if correlation else None
            if row is not None:  # our own create whose answer never came: adopt it
                self.adopt(row, record)
        if row is not None and row.upstream_update == record.get("lastUpdate") and row.agreed_status == record.get("status"):
            return  # seen already (a record in the watermark's own second)
        values, refusals = fields_of_problem(record, self.flavour.custom)
        if row is None:
            if _carries_a_ticket_id(record) or self.protocol.get_parameter("Import Upstream Problems") != ENABLED:
                return
            self.import_problem(record, values, refusals, tickets)
            return
        ticket = tickets.get(row.ticket_id)
        if ticket is None:
            return
        for refusal in refusals:
            self.note_refusal(row, refusal)
        tickets[row.ticket_id] = self.merge(row, ticket, record, values)
        self.counts["applied"] += 1

    def adopt(self, row: _Row, record: Mapping[str, Any]) -> None:
        row.problem_id = record["id"]
        row.creation, row.attempts, row.error, row.changed = CREATED, 0, "", True
        self.by_problem[row.problem_id] = row
        self.protocol.log(f"{self.flavour.name}: ticket {row.ticket_id} found upstream as {row.problem_id}; not created again")

    def import_problem(self, record: Mapping[str, Any], values: dict[str, Any], refusals: list[str], tickets: dict[str, Any]) -> None:
        state = STATE_OF_STATUS.get(str(record.get("status")), "New")
        wanted = {name: value for name, value in values.items() if value is not None and value != []}
        try:
            ticket = self.tickets.create(self.flavour.ticket_type, wanted, state=state)
        except DmemuError as error:
            self.protocol.log(f"{self.flavour.name}: problem {record['id']} not imported: {error}", LogType.ERROR)
            return
        tickets[ticket.id] = ticket
        row = self.row_for_ticket(ticket)
        row.problem_id, row.creation = record["id"], CREATED
        self.by_problem[row.problem_id] = row
        self.agree(row, ticket, record, values)
        for refusal in refusals:
            self.note_refusal(row, refusal)
        self.counts["imported"] += 1

    def merge(self, row: _Row, ticket: Any, record: Mapping[str, Any], values: dict[str, Any]) -> Any:
        """Three-way: a field only upstream changed comes down; one both changed goes to its owner."""
        mine = fields_of_ticket(ticket)
        down: dict[str, Any] = {name: values.get(name) for name in UPSTREAM_ONLY if name in values}
        for name in self.flavour.synced_fields:
            if name not in values:
                continue  # refused: the ticket keeps its last good value
            theirs, agreed = values[name], row.agreed.get(name)
            if name == NOTES:
                merged = _notes([*(mine.get(NOTES) or ()), *(theirs or ())])
                if merged != mine.get(NOTES):
                    down[NOTES] = merged
                continue
            if theirs == agreed or theirs == mine.get(name):
                continue
            if mine.get(name) == agreed or self.flavour.owner(name) == "servicenow":
                down[name] = theirs
        status = str(record.get("status"))
        state = None
        if not states_agree(ticket.state.value, status):
            upstream_moved = status != row.agreed_status
            dms_moved = ticket.state.value != row.agreed_state
            dms_resolution_wins = ticket.state.value in ("Resolved", "Closed") and status not in FINAL_UPSTREAM
            if upstream_moved and not (dms_moved and dms_resolution_wins):
                state = STATE_OF_STATUS.get(status)
        ticket = self.update_ticket(row, ticket, down, state, mine)
        # What upstream says is agreed now; what DataMiner keeps different goes up in this cycle.
        self.agree(row, ticket, record, values, keep_dms=True)
        return ticket

    def agree(self, row: _Row, ticket: Any, record: Mapping[str, Any], values: Mapping[str, Any], *, keep_dms: bool = False) -> None:
        for name in self.flavour.synced_fields:
            if name in values:
                row.agreed[name] = values[name]
        row.agreed_status = str(record.get("status"))
        row.agreed_state = STATE_OF_STATUS.get(row.agreed_status, ticket.state.value) if keep_dms else ticket.state.value
        if states_agree(ticket.state.value, row.agreed_status):
            row.agreed_state = ticket.state.value
        row.upstream_update = str(record.get("lastUpdate") or "")
        row.problem_id = str(record.get("id") or row.problem_id)
        row.incident = values.get("Incident Number") or row.incident
        row.link = values.get("Incident Link") or row.link
        row.status = row.agreed_status
        row.dms_state, row.info = ticket.state.value, _info(ticket)
        row.custom = {a.field: _custom_cell(a, ticket.fields.get(a.field)) for a in self.flavour.custom}
        row.synced, row.changed = self.protocol.now(), True

    # -- outbound ---------------------------------------------------------------------------

    def create_all(self, tickets: Mapping[str, Any]) -> None:
        waiting = [row for row in self.rows.values() if row.creation != CREATED and row.ticket_id in tickets]
        after_start = self.protocol.get_parameter("Create Phases Since Start") == 0
        if not waiting:
            self.protocol.set_parameter("Create Phases Since Start", 1)  # nothing was left unknown
            return
        if self.retry_at is not None:
            return
        # An earlier attempt may have reached the server: it failed without an answer, or the
        # element (or its process) stopped after sending. Until the first create phase after a
        # start, any ticket not known as Created may have been sent by the process before.
        unknown = {row.ticket_id for row in waiting if row.attempts or row.creation == BUFFERED or after_start}
        for row in waiting:
            row.creation, row.changed = BUFFERED, True
        # Shown (and saved) as Buffered before anything is sent. Their baselines have not changed
        # in this cycle: they are written with the outcome, at the end of the cycle.
        self.protocol.fill_array_no_delete(TICKETS, [row.cells(self.flavour.custom) for row in waiting])
        # Each worker takes the next waiting ticket as it finishes one, as a plain loop of
        # requests does: no task or future per ticket, and the cycle's thread wakes up once.
        outcomes: list[_ApiFailed | None] = [None] * len(waiting)
        pending: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(len(waiting)):
            pending.put(index)

        def work() -> None:
            while True:
                try:
                    index = pending.get_nowait()
                except queue.Empty:
                    return
                row = waiting[index]
                try:
                    outcomes[index] = self.create_one(row, tickets, row.ticket_id in unknown)
                except BaseException:  # a bug: the other workers take no more tickets either
                    with contextlib.suppress(queue.Empty):
                        while True:
                            pending.get_nowait()
                    raise

        with ThreadPoolExecutor(PARALLEL_CREATES) as pool:
            for worker in [pool.submit(work) for _ in range(min(PARALLEL_CREATES, len(waiting)))]:
                worker.result()
        for row, outcome in zip(waiting, outcomes):
            if outcome is not None:
                row.creation, row.attempts = NONE, row.attempts + (1 if outcome.maybe_done else 0)
                self.failed(outcome, row)
        if self.created_ok and not self.failures:
            self.api_status(OK, 201, "")
        self.protocol.set_parameter("Create Phases Since Start", self.protocol.get_parameter("Create Phases Since Start") + 1)
        for row in waiting:
            if row.creation == BUFFERED:  # a 429 stopped the rest of the cycle before this one
                row.creation, row.changed = NONE, True

    def create_one(self, row: _Row, tickets: dict[str, Any], maybe_upstream: bool) -> _ApiFailed | None:
        """On a worker thread: create (or find) the ticket's problem and take its answer in (each
        worker its own row and ticket; DMS Ticketing is thread-safe), so one answer's handling
        never waits for another's; answers the failure, if any."""
        ticket = tickets[row.ticket_id]
        try:
            problem = self.lookup(row.ticket_id) if maybe_upstream else None
            if problem is None:
                problem = self.post(ticket)
        except _ApiFailed as error:
            self.hold_for(error)  # no more creates this cycle
            return error
        tickets[row.ticket_id] = self.adopt_created(row, ticket, problem)
        return None

    def post(self, ticket: Any) -> dict[str, Any]:
        """The problem created for `ticket`, carrying its id; `_ApiFailed` when there is none."""
        if self.retry_at is not None:
            raise _ApiFailed("not sent: the server asked to wait (429)", state=RATE_LIMITED, maybe_done=False, retry_after=0)
        body = problem_changes(fields_of_ticket(ticket), self.flavour.custom, creating=True)
        body["externalIdentifier"] = [{"id": ticket.id, "externalIdentifierType": CORRELATION_TYPE, "owner": "DataMiner"}]
        body["originatingSystem"] = ORIGINATING_SYSTEM
        payload, _ = self.api.call("POST", body=body)
        if not isinstance(payload, dict) or not payload.get("id"):
            raise _ApiFailed(f"POST {self.api.collection}: the answer is no service problem", state=INVALID_RESPONSE, maybe_done=True)
        return payload

    def lookup(self, ticket_id: str) -> dict[str, Any] | None:
        if self.flavour.servicenow_query:
            params = {"sysparm_query": f"correlation_id={ticket_id}"}
        else:
            params = {"externalIdentifier.id": ticket_id}
        payload, _ = self.api.call("GET", params=params)
        if not isinstance(payload, list):
            raise _ApiFailed(f"GET {self.api.collection}: the answer is a JSON {type(payload).__name__}, not a list", state=INVALID_RESPONSE, maybe_done=True)
        mine = [p for p in payload if isinstance(p, dict) and _identifier(p, CORRELATION_TYPE) == ticket_id]
        return mine[0] if mine else None

    def adopt_created(self, row: _Row, ticket: Any, problem: dict[str, Any]) -> Any:
        values, _ = fields_of_problem(problem, self.flavour.custom)
        row.creation, row.attempts, row.error = CREATED, 0, ""
        self.by_problem[problem["id"]] = row
        upstream_only = {name: values.get(name) for name in UPSTREAM_ONLY if values.get(name) is not None}
        ticket = self.update_ticket(row, ticket, upstream_only, None, {name: ticket.fields.get(name) for name in upstream_only})
        self.agree(row, ticket, problem, values)
        row.agreed_state = "New" if ticket.state.value == "New" else STATE_OF_STATUS.get(row.agreed_status, "")
        with self.counting:  # on the workers: += is no atomic step
            self.counts["created"] += 1
        self.created_ok = True
        return ticket

    def push_changes(self, tickets: Mapping[str, Any]) -> None:
        wanted: list[tuple[_Row, dict[str, Any]]] = []
        for row in self.rows.values():
            ticket = tickets.get(row.ticket_id)
            if row.creation != CREATED or ticket is None or not row.problem_id:
                continue
            if row.agreed_status in FINAL_UPSTREAM:
                continue  # closed upstream: nothing more is sent
            mine = fields_of_ticket(ticket)
            changed = {name: mine.get(name) for name in self.flavour.synced_fields if mine.get(name) != row.agreed.get(name)}
            patch = problem_changes(changed, self.flavour.custom, creating=False) if changed else {}
            characteristics = [a for a in self.flavour.custom if a.travels == "characteristic"]
            if any(a.field in changed for a in characteristics):  # the list travels whole in a merge patch
                patch.update(problem_changes({a.field: mine.get(a.field) for a in characteristics}, characteristics, creating=False))
            state = ticket.state.value
            if not states_agree(state, row.agreed_status) and state in STATUS_OF_STATE and state != row.agreed_state:
                patch["status"] = STATUS_OF_STATE[state]
            if patch:
                wanted.append((row, patch))
        if not wanted or self.retry_at is not None:
            return
        with ThreadPoolExecutor(PARALLEL_CREATES) as pool:
            outcomes = pool.map(lambda item: self.patch_one(*item), wanted)
            for (row, patch), outcome in zip(wanted, outcomes):
                if isinstance(outcome, _ApiFailed):
                    self.failed(outcome, row)
                    if outcome.http_status == 409:
                        self.refetch(row, tickets)
                    continue
                values, _ = fields_of_problem(outcome, self.flavour.custom)
                down = {name: values.get(name) for name in UPSTREAM_ONLY if values.get(name) is not None}
                ticket = tickets[row.ticket_id] = self.update_ticket(row, tickets[row.ticket_id], down, None)
                self.agree(row, ticket, outcome, values)
                row.error = ""
                self.counts["closed" if patch.get("status") == "resolved" else "updated"] += 1

    def patch_one(self, row: _Row, patch: dict[str, Any]) -> Any:
        if self.retry_at is not None:
            return _ApiFailed("not sent: the server asked to wait (429)", state=RATE_LIMITED, maybe_done=False, retry_after=0)
        try:
            payload, _ = self.api.call("PATCH", f"/{row.problem_id}", body=patch)
            if not isinstance(payload, dict) or payload.get("id") != row.problem_id:
                raise _ApiFailed(f"PATCH {self.api.collection}/{row.problem_id}: the answer is not that problem", state=INVALID_RESPONSE, maybe_done=True)
            return payload
        except _ApiFailed as error:
            self.hold_for(error)
            return error

    def refetch(self, row: _Row, tickets: dict[str, Any]) -> None:
        """A change upstream refused (409, a state it cannot take): upstream wins, read it back."""
        try:
            record, _ = self.api.call("GET", f"/{row.problem_id}")
        except _ApiFailed as error:
            self.failed(error, row)
            return
        if isinstance(record, dict):
            ticket = tickets[row.ticket_id]
            values, refusals = fields_of_problem(record, self.flavour.custom)
            state = None if states_agree(ticket.state.value, str(record.get("status"))) else STATE_OF_STATUS.get(str(record.get("status")))
            ticket = self.update_ticket(row, ticket, {n: values[n] for n in (*UPSTREAM_ONLY, *self.flavour.synced_fields) if n in values}, state)
            tickets[row.ticket_id] = ticket
            self.agree(row, ticket, record, values)

    # -- the whole cycle --------------------------------------------------------------------

    def run(self) -> None:
        tickets = self.reconcile()
        try:
            records = self.poll()
        except _ApiFailed as error:
            self.failed(error)
            records = []
        else:
            newest = max((_utc(record.get("lastUpdate")) for record in records), default=None, key=lambda t: t or 0.0)
            for record in records:
                try:
                    self.apply(record, tickets)
                except DmemuError as error:  # a ticket that refuses the change: that ticket only
                    self.protocol.log(f"{self.flavour.name}: problem {record.get('id')}: {error}", LogType.ERROR)
            if newest is not None:
                self.protocol.set_parameter("Inbound Watermark", newest)
        self.create_all(tickets)
        self.push_changes(tickets)
        for row in self.rows.values():  # show the state each side is in now
            ticket = tickets.get(row.ticket_id)
            if ticket is not None and (row.dms_state != ticket.state.value):
                row.dms_state, row.info, row.changed = ticket.state.value, _info(ticket), True
        _save_rows(self.protocol, self.rows.values(), self.flavour.custom)


def _carries_a_ticket_id(record: Mapping[str, Any]) -> bool:
    """Whether a problem carries a DataMiner ticket id (one this element does not hold: another
    element's, or a ticket gone): such a problem is never imported as a new ticket."""
    return _identifier(record, CORRELATION_TYPE) is not None


# --------------------------------------------------------------------------------------------
# QActions


def _ready(flavour: Flavour, protocol: QActionProtocol) -> bool:
    """Whether a cycle may talk to the network now; the status says why not."""
    if not protocol.has_licence(TICKETING_LICENCE):
        protocol.set_parameter("Synchronization Status", "No DataMiner Ticketing licence: nothing is synchronised")
        return False
    if protocol.get_parameter("Ticket Type Status") != "OK":
        protocol.set_parameter("Synchronization Status", f"Ticket type refused: {protocol.get_parameter('Ticket Type Status')}")
        return False
    if protocol.get_parameter("Ticket Synchronization State") != ENABLED:
        protocol.set_parameter("Synchronization Status", "Disabled")
        return False
    missing = [name for name in ("API Base Path", "Username", "Password") if not protocol.get_parameter(name)]
    if missing:
        protocol.set_parameter("Synchronization Status", f"Not initialised: fill in {', '.join(missing)} on the Configuration page")
        return False
    element = protocol.element
    return element.state is ElementState.ACTIVE and not element.dms.closed


def start_up(flavour: Flavour, protocol: QActionProtocol) -> None:
    """After start-up: define the ticket type and hear every change of its tickets."""
    if not protocol.has_licence(TICKETING_LICENCE):
        protocol.set_parameter("Synchronization Status", "No DataMiner Ticketing licence: nothing is synchronised")
        protocol.log(f"{flavour.name}: the DMS holds no DataMiner Ticketing licence; the connector stays idle", LogType.ERROR)
        return
    try:
        protocol.tickets.define_type(ticket_type(flavour.ticket_type, flavour.custom))
    except DmemuError as error:
        protocol.set_parameter("Ticket Type Status", _cut(str(error)))
        protocol.set_parameter("Synchronization Status", f"Ticket type refused: {_cut(str(error))}")
        protocol.log(f"{flavour.name}: ticket type {flavour.ticket_type!r} refused: {error}", LogType.ERROR)
        return
    protocol.set_parameter("Ticket Type Status", "OK")
    # Its own changes (upstream values written down, imports) it knows already: only others'.
    protocol.tickets.subscribe_element(protocol.element, "Ticket Event", ticket_type=flavour.ticket_type, own_changes=False)
    synchronize(flavour, protocol)


def synchronize(flavour: Flavour, protocol: QActionProtocol) -> None:
    """A synchronisation cycle (timer, Synchronize Now)."""
    if not _ready(flavour, protocol):
        return
    retry_at = protocol.get_parameter("Retry Not Before")
    if retry_at is not None and protocol.now() < retry_at:
        return
    cycle = _Cycle(flavour, protocol)
    started = protocol.now()
    try:
        cycle.run()
    except _ApiFailed as error:
        cycle.failed(error)
    finally:
        counts = cycle.counts
        result = "OK" if not cycle.failures else f"Failed: {cycle.failures[0]}" + (f" (+{len(cycle.failures) - 1} more)" if len(cycle.failures) > 1 else "")
        protocol.set_parameters({
            "Last Synchronization Cycle": started, "Last Synchronization Result": _cut(result),
            "Tickets Created Upstream": counts["created"], "Tickets Updated Upstream": counts["updated"],
            "Tickets Closed Upstream": counts["closed"], "Problems Imported": counts["imported"],
            "Upstream Changes Applied": counts["applied"], "Retry Not Before": cycle.retry_at,
            "Next Synchronization": (cycle.retry_at or started + protocol.get_parameter("Ticket Synchronization Frequency")),
            "Synchronization Status": "OK" if not cycle.failures else "Failing: see Last Synchronization Result",
        })  # fmt: skip


def check_due(flavour: Flavour, protocol: QActionProtocol) -> None:
    """The timer's QAction: a cycle when the next one is due."""
    due = protocol.get_parameter("Next Synchronization")
    if due is None or protocol.now() >= due:
        synchronize(flavour, protocol)


def ticket_event(flavour: Flavour, protocol: QActionProtocol) -> None:
    """A ticket of the type was created or changed: a new one gets its row (None, sent by the
    next cycle); a changed one shows its state. What travels is decided by the cycle, against
    the baseline, so an echo of an upstream change sends nothing."""
    try:
        event = json.loads(protocol.trigger_value or "{}")
        ticket = event["ticket"]
    except (ValueError, KeyError, TypeError):
        return
    key = ticket["id"]
    info = _info_text(ticket["type"], ticket["state"], ticket["fields"])
    if protocol.exists(TICKETS, key):
        if protocol.get_cell(TICKETS, key, "DataMiner State") != ticket["state"] or protocol.get_cell(TICKETS, key, "Ticket Info") != info:
            protocol.set_row(TICKETS, key, {"Ticket Info": info, "DataMiner State": ticket["state"]})
    else:
        row = _Row(key, info=info, dms_state=ticket["state"])
        protocol.fill_array_no_delete(TICKETS, [row.cells(flavour.custom)])


def frequency_changed(protocol: QActionProtocol) -> None:
    last = protocol.get_parameter("Last Synchronization Cycle")
    if last is not None:
        protocol.set_parameter("Next Synchronization", last + protocol.get_parameter("Ticket Synchronization Frequency"))


# --------------------------------------------------------------------------------------------
# The protocol's declarations, shared by both connectors

PAGES = (Page("General", order=0), Page("Configuration", order=1))


def parameters(flavour: Flavour) -> tuple[Parameter, ...]:
    return (
        # General: synchronisation status
        Parameter(10, "Synchronization Status", String(), default="Not started", page="General"),
        Parameter(11, "Last Synchronization Cycle", DateTime(), save=True, page="General"),
        Parameter(12, "Last Synchronization Result", String(), default="", save=True, page="General"),
        Parameter(13, "Tickets Created Upstream", Number(0), default=0, page="General", description="In the last cycle."),
        Parameter(14, "Tickets Updated Upstream", Number(0), default=0, page="General", description="In the last cycle."),
        Parameter(15, "Tickets Closed Upstream", Number(0), default=0, page="General",
                  description="Problems patched to resolved in the last cycle."),
        Parameter(16, "Problems Imported", Number(0), default=0, page="General",
                  description="Problems created by ServiceNow users, imported as tickets in the last cycle."),
        Parameter(17, "Upstream Changes Applied", Number(0), default=0, page="General", description="In the last cycle."),
        Parameter(18, "API Communication Status", Discrete(_STATUS_NAMES), default=NOT_POLLED, save=True, page="General"),
        Parameter(19, "Last HTTP Status", Number(0, 999), default=0, save=True, page="General", description="0: no answer came"),
        Parameter(20, "Last API Error", String(), default="", save=True, page="General"),
        Parameter(21, "Last API Success", DateTime(), save=True, page="General"),
        Parameter(22, "Last API Attempt", DateTime(), save=True, page="General"),
        Parameter(25, "Synchronize Now", Button("Synchronize"), write=True, page="General"),
        # bookkeeping
        Parameter(30, "Inbound Watermark", DateTime(), save=True, description="The newest lastUpdate applied: the next poll asks from there (>=)."),
        Parameter(31, "Next Synchronization", DateTime(), save=True),
        Parameter(32, "Retry Not Before", DateTime(), save=True, description="Set by a 429's Retry-After."),
        Parameter(33, "Ticket Type Status", String(), default="", description="OK once the ticket type is defined."),
        Parameter(34, "Create Phases Since Start", Number(0), default=0,
                  description="Not saved: 0 after a start, when every ticket not yet Created is looked up before it is created."),
        Parameter(40, "Ticket Event", String(), write=True, default="", description="DMS Ticketing sets its ticket events here."),
        # Configuration
        Parameter(100, "API Base Path", String(), write=True, default=flavour.default_base_path, save=True, page="Configuration",
                  description="Path of the TMF656 API on the element's host and port."),
        Parameter(101, "Username", String(), write=True, default="", save=True, page="Configuration"),
        Parameter(102, "Password", String(secret=True), write=True, default="", save=True, page="Configuration"),
        Parameter(103, "Ticket Synchronization State", Discrete({DISABLED: "Disabled", ENABLED: "Enabled"}), write=True,
                  default=ENABLED, save=True, page="Configuration"),
        Parameter(104, "Ticket Synchronization Frequency", Number(10, 86400, "s"), write=True, default=60, save=True,
                  page="Configuration", description="Seconds between two synchronisation cycles (10 s to a day)."),
        Parameter(105, "Import Upstream Problems", Discrete({DISABLED: "Disabled", ENABLED: "Enabled"}), write=True,
                  default=flavour.import_default, save=True, page="Configuration",
                  description="Problems created by ServiceNow users become DataMiner tickets too."),
        Parameter(106, "Records Per Page", Number(1, 1000), write=True, default=100, save=True, page="Configuration"),
    )  # fmt: skip


def tables(flavour: Flavour) -> tuple[Table, ...]:
    def text(pid: int, name: str, **options: Any) -> Column:
        return Column(pid, name, String(), **options)

    custom_columns = tuple(
        Column(a.column_id, a.field, Number() if a.kind == "number" else String()) for a in flavour.custom
    )
    return (
        Table(1000, TICKETS, save=True, page="General", columns=(
            text(1001, "DataMiner Ticket ID", key=True), text(1002, "Ticket Info"), text(1003, "Service Problem ID"),
            text(1004, "Incident Number"), text(1005, "Incident Link"),
            Column(1006, "Creation Status", Discrete({NONE: "None", BUFFERED: "Buffered", CREATED: "Created"})),
            text(1007, "DataMiner State"), text(1008, "Upstream Status"), Column(1009, "Last Synchronized", DateTime()),
            text(1010, "Last Error"), Column(1011, "Create Attempts", Number(0),
                                              description="Attempts whose outcome is unknown: the ticket is looked up before the next."),
            *custom_columns,
        )),
        Table(1100, BASELINE, save=True, columns=(
            text(1101, "DataMiner Ticket ID", key=True), text(1102, "Agreed Fields"), text(1103, "Agreed State"),
            text(1104, "Agreed Status"), text(1105, "Upstream Last Update"),
        )),
    )  # fmt: skip


TIMERS = (Timer(1, seconds=10, qactions=(3,), at_startup=False, name="Synchronization Check"),)


def qactions(flavour: Flavour) -> tuple[QAction, ...]:
    bound: Callable[[Callable[..., None]], Callable[[QActionProtocol], None]] = lambda function: partial(function, flavour)  # noqa: E731
    return (
        QAction(1, bound(start_up), after_startup=True, name="Start-up"),
        QAction(2, bound(synchronize), triggers=(25,), name="Synchronize"),
        QAction(3, bound(check_due), name="Synchronization Check"),
        QAction(4, frequency_changed, triggers=(104,), name="Frequency Changed"),
        QAction(5, bound(ticket_event), triggers=(40,), name="Ticket Event"),
    )
