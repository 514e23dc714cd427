"""Telenet Ticket Gateway: a buffer of ticket requests from any element, sent one at a time to the
ticketing web service (OSB), each answer set back on the requester's parameter.

What the connector's help page says, and where it lives here:

* **The ticketing service**: the *Connection Details* page has the same *Service Info Table* as
  the Ticket Clients (changed only by *Import CSV*, shown back by *Export CSV*, on *CSV File
  Path*; `service_info`) and *Service Selection*: every request goes to the selected service's
  host, port and path. With no service selected (the choice is optional, so a Gateway set up
  the plain HTTP way keeps working) requests go to ``/osb/TicketingService`` on the element's
  own HTTP connection (IP address/host and IP port; bus address ``BypassProxy`` for no proxy,
  which applies to a selected service too). Every operation is a ``POST`` of SOAP-style XML
  (`osb_messages`). With ``BypassProxy``, plain http and no credentials the POSTs go over one
  kept-alive stream (`plain_http_target`: the same bytes reach the service, without requests'
  half millisecond of Python per call), else through the element's requests session.
* **Requests from any element**: another element's QAction sends a request
  (``protocol.send_request(gateway, "Ticket Request", body, reply_parameter)``) whose body is
  ``{"operation": "create" | "update" | "close" | "search", "ticket_type": "MO" | "PLM",
  "fields": {...}}``, the fields named as on the wire in snake_case (create: ``alarm_id``,
  ``network_element``, ``severity``, ``path_details``, ``description``; update: ``ticket_id``,
  ``severity``, ``description``; close: ``ticket_id``, ``resolution``; search:
  ``network_element``, ``alarm_id``, ``status``). A create, update or close may also carry
  ``"request_key"``: the caller's own id of what it asks, sent as the RequestId instead of the
  request id. A caller that asks again after an answer it never got (``no answer after N
  attempts``, ``FAILED: no result within``) sends the same key, and the service, idempotent on
  RequestId, answers the transaction it already has instead of making a second ticket; the
  automatic flow keys each alarm event's request so. A body that cannot be sent is answered at
  once with an error reply naming what was wrong, and never buffered.
* **The buffer** (Request Buffer table): create, update and close of MO and PLM tickets go
  before searches, each kind in the order it came; searches are sent at most *Search Rate* per
  second. One request at a time goes to the service: the next is chosen once the answer to the
  last one came (`_Buffer`), while the element goes on taking requests meanwhile.
* **Answers**: a create, update or close is answered ACK with a transaction (replied as
  ``{"stage": "ack", "transaction_id": ...}``), then its asynchronous result is asked for every
  *Result Poll Interval* seconds with GetTransactionResult and replied as ``{"stage": "result",
  "status": "COMPLETED", "ticket_id": ...}``; a search is replied once with the tickets found.
  Failures are error replies: ``NACK: <reason>``, ``FAILED: <reason>`` (the result),
  ``no answer after N attempts: <last error>``, or the service's refusal of the request.
* **Retries**: a timeout, a connection failure, an HTTP 5xx (or 408, 429) or an answer that is
  not the expected XML is tried again after *Retry Interval* seconds, up to *Max Retries* (3)
  times after the first attempt. A NACK or a SOAP Fault blaming the request is final. Retrying a
  create, update or close is safe: it carries the same RequestId (its request_key, else the buffer's key), on which
  the service is idempotent, so no second ticket is made.
* **Restarts**: the buffer is saved; after a restart, requests not yet acknowledged are sent
  again with their RequestId and acknowledged ones are polled for their result. A final answer
  (a result, a failure) that cannot be set on the requester (stopped, paused, deleted) keeps its
  row *Reply Pending* and is set again every *Retry Interval* seconds, so a requester started
  again hears it, until *Finished Request Retention* ends (then the row goes, logged). An ACK
  is not kept: the result follows it.
* **Pages**: Buffer (the requests, the Buffer Depth and the count per state; finished rows are
  kept *Finished Request Retention* seconds), Communication (API Status, last HTTP status, last
  error, and the latest exchanges with the service, at most *Communication Max Rows*),
  Configuration.
"""

from __future__ import annotations

import functools
import json
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import requests

from dmemu.protocol import (
    Column,
    Connection,
    DateTime,
    Discrete,
    Element,
    HttpAnswer,
    HttpConnection,
    LogType,
    MessageFormatError,
    Number,
    Page,
    Parameter,
    Protocol,
    QAction,
    QActionProtocol,
    ReplyAddress,
    Request,
    SerialConnectionError,
    SerialTimeoutError,
    String,
    Table,
    Timer,
    plain_http_target,
)
from dmemu.protocol.json_text import dumps as json_text
from dmemu.protocol.json_text import json_encoder

from .osb_messages import (
    CLOSE_TICKET,
    COMPLETED,
    CREATE_TICKET,
    FAILED,
    GET_TRANSACTION_RESULT,
    PENDING,
    SEARCH_TICKET,
    SERVICE_PATH,
    TICKET_TYPES,
    UPDATE_TICKET,
    FoundTicket,
    Operation,
    OsbAck,
    OsbAnswerError,
    OsbFaultError,
    OsbNack,
    OsbNackError,
    OsbRequestError,
    TransactionResult,
    build_request,
    parse_search_response,
    parse_ticket_response,
    parse_transaction_result,
    snake_case,
    transaction_result_request,
)
from .service_info import (
    ServiceInfo,
    export_csv,
    import_csv,
    select_service,
    selected_service,
    service_info_parameters,
    service_info_table,
    show_active_service,
)
from .texts import cell_text

BUFFER = "Request Buffer"
_sorted_json = json_encoder(sort_keys=True)
COMMUNICATION = "Communication"

# Operations a request names, and what goes on the wire for each.
OPERATIONS: Mapping[str, Operation] = {"create": CREATE_TICKET, "update": UPDATE_TICKET, "close": CLOSE_TICKET, "search": SEARCH_TICKET}
_SET_BY_GATEWAY = ("RequestId", "TicketType")  # wire fields the body does not carry in `fields`
BODY_FIELDS: Mapping[str, tuple[str, ...]] = {
    name: tuple(snake_case(field) for field in operation.fields if field not in _SET_BY_GATEWAY) for name, operation in OPERATIONS.items()
}

# Priorities (column "Priority"): lower goes first.
HIGH, LOW = 1, 2
# Request states (column "State")
QUEUED, SENT, AWAITING_RESULT, DONE, FAILED_STATE, REPLY_PENDING = range(6)
STATE_NAMES = {
    QUEUED: "Queued", SENT: "Sent", AWAITING_RESULT: "Awaiting Result", DONE: "Done", FAILED_STATE: "Failed", REPLY_PENDING: "Reply Pending",
}  # fmt: skip
WAITING = (QUEUED, SENT)  # not yet acknowledged: to be sent (again)
FINISHED = (DONE, FAILED_STATE)
_FINISHED_STATES = frozenset(FINISHED)
_ENDING_STATES = frozenset((*FINISHED, REPLY_PENDING))  # dropped after Finished Request Retention
# Communication states (parameter "API Status")
NOT_CONTACTED, OK, TIMEOUT, CONNECTION_FAILED, HTTP_ERROR, INVALID_ANSWER, REFUSED = range(7)
RETRIED_STATUSES = frozenset({408, 429})  # besides every 5xx: a busy or briefly broken service
MAX_REQUEST_KEY = 200  # characters of a body's request_key
# How the error replies begin after which the service may have done a create, update or close
# all the same (its answer was lost, or its result never came): ask again with the same request_key.
NO_ANSWER, NO_RESULT = "no answer after", "FAILED: no result within"
OUTCOME_UNKNOWN = (NO_ANSWER, NO_RESULT)


# --------------------------------------------------------------------------------------------
# The request body


class TicketRequestError(OsbRequestError):
    """A Ticket Request's body cannot be sent; the message names what was wrong."""


@attrs.frozen
class TicketRequest:
    """A request's body, checked: what to send, and its fields by wire name."""

    operation: str  # create, update, close or search
    ticket_type: str
    fields: Mapping[str, str]  # snake_case names, as the body gave them
    request_key: str = ""  # the caller's RequestId for a create, update or close ("": the request id)

    @property
    def wire(self) -> Operation:
        return OPERATIONS[self.operation]

    def xml(self, request_id: str) -> bytes:
        """The request's XML; its `request_key`, else `request_id`, goes in RequestId where the operation has one."""
        values: dict[str, Any] = {field: self.fields.get(snake_case(field)) for field in self.wire.fields if field not in _SET_BY_GATEWAY}
        if "TicketType" in self.wire.fields:
            values["TicketType"] = self.ticket_type
        if "RequestId" in self.wire.fields:
            values["RequestId"] = self.request_key or request_id
        return build_request(self.wire, values)

    @classmethod
    def from_body(cls, body: Any, request_id: str) -> tuple[TicketRequest, bytes]:
        """The body of a Ticket Request, checked as far as the wire goes (`TicketRequestError`),
        and its XML for `request_id` (built to check it)."""
        if not isinstance(body, dict):
            raise TicketRequestError(f"the body is a JSON object with operation, ticket_type and fields, not {_short(body)}")
        unknown = sorted(set(body) - {"operation", "ticket_type", "fields", "request_key"})
        if unknown:
            raise TicketRequestError(f"unknown key {unknown[0]!r} in the body; its keys are operation, ticket_type, fields and request_key")
        operation = body.get("operation")
        if operation not in OPERATIONS:
            raise TicketRequestError(f"operation {_short(operation)} is not one of {', '.join(OPERATIONS)}")
        ticket_type = body.get("ticket_type")
        if ticket_type not in TICKET_TYPES:
            raise TicketRequestError(f"ticket_type {_short(ticket_type)} is not one of {', '.join(TICKET_TYPES)}")
        fields = body.get("fields", {})
        if not isinstance(fields, dict):
            raise TicketRequestError(f"fields is a JSON object, not {_short(fields)}")
        allowed = BODY_FIELDS[operation]
        unknown = sorted(set(fields) - set(allowed))
        if unknown:
            raise TicketRequestError(f"unknown field {unknown[0]!r} for {operation}; its fields are {', '.join(allowed)}")
        texts = {}
        for name, value in fields.items():
            if value is None:
                continue  # an optional field left out
            if type(value) is int:  # alarm ids are numbers in the DMS
                value = str(value)
            if not isinstance(value, str):
                raise TicketRequestError(f"field {name} is text, not {_short(value)}")
            texts[name] = value
        request_key = body.get("request_key")
        if request_key is not None:
            if operation == "search":
                raise TicketRequestError("request_key is for a create, update or close: a search has no RequestId")
            if not isinstance(request_key, str) or not request_key.strip() or len(request_key) > MAX_REQUEST_KEY:
                raise TicketRequestError(f"request_key is text of 1 to {MAX_REQUEST_KEY} characters, not {_short(request_key)}")
        request = cls(operation, ticket_type, texts, request_key or "")
        try:
            return request, request.xml(request_id)  # the wire's own checks: required fields, allowed values
        except OsbRequestError as error:
            raise TicketRequestError(str(error)) from None


def _short(value: Any) -> str:
    text = json_text(value) if value is not None else "null"
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------
# The buffer's rows

_COLUMNS = (
    "Request ID", "Requester", "Operation", "Ticket Type", "Priority", "State", "Attempts", "Queued Time", "Last Error",
    "Transaction ID", "Ticket ID", "Next Action Time", "Acknowledged Time", "Finished Time", "Sequence", "Request Fields",
    "Undelivered Reply",
)  # fmt: skip
_POSITION = {name: index for index, name in enumerate(_COLUMNS)}
_POSITION_OF_ARGUMENT = {name.replace(" ", "_"): index for name, index in _POSITION.items()}  # `_write`'s keyword names
_NEXT_ACTION, _SEQUENCE, _PRIORITY = _POSITION["Next Action Time"], _POSITION["Sequence"], _POSITION["Priority"]


@attrs.define
class _Buffered:
    """A row of the Request Buffer table."""

    key: str
    reply_to: ReplyAddress
    request: TicketRequest
    priority: int
    state: int
    attempts: int
    queued_time: float
    transaction_id: str
    next_action: float
    acknowledged: float | None
    finished: float | None
    sequence: int
    xml: bytes = b""  # what goes on the wire, once built (a row read back from the table builds it when sent)

    @classmethod
    def of(cls, key: str, row: list[Any]) -> _Buffered:
        cell = dict(zip(_COLUMNS, row))
        agent, element, parameter = (int(part) for part in cell["Requester"].split("/"))
        saved = json.loads(cell["Request Fields"])
        request = TicketRequest(saved["operation"], cell["Ticket Type"], saved["fields"], saved.get("request_key", ""))
        return cls(
            key, ReplyAddress(agent, element, parameter), request, int(cell["Priority"]), int(cell["State"]), int(cell["Attempts"] or 0),
            cell["Queued Time"], cell["Transaction ID"] or "", cell["Next Action Time"] or 0.0, cell["Acknowledged Time"],
            cell["Finished Time"], int(cell["Sequence"] or 0),
        )  # fmt: skip

    @property
    def reply_request(self) -> Request:
        """The request as the requester sent it, for `protocol.reply`."""
        return Request(self.key, self.reply_to)


def _requester(row: _Buffered) -> str:
    address = row.reply_to
    return f"{address.agent_id}/{address.element_id} parameter {address.parameter}"


def _write(protocol: QActionProtocol, key: str, **cells: Any) -> None:
    """Update some cells of a buffer row (by column name, spaces as underscores)."""
    row: list[Any] = [None] * len(_COLUMNS)
    for name, value in cells.items():
        row[_POSITION_OF_ARGUMENT[name]] = value
    protocol.set_row(BUFFER, key, row)


# --------------------------------------------------------------------------------------------
# Talking to the service


class _Failure(Exception):
    """An exchange failed: `retry` when trying again may help (the service may be down);
    `state` the API Status it shows, `status` the HTTP status that came (0: none)."""

    def __init__(self, message: str, *, retry: bool, state: int, status: int = 0) -> None:
        super().__init__(message)
        self.retry = retry
        self.state = state
        self.status = status



_Posted = tuple[int, str, bytes, Callable[[], str]]  # status, reason, body, and the body as text
_Outcome = _Posted | HttpAnswer | Exception  # what came back for a POST, or why nothing did


class _Service:
    """Where the requests go and how: the selected service (or the element's own connection)."""

    def __init__(self, protocol: QActionProtocol, service: ServiceInfo | None) -> None:
        self.url = service_url(protocol)
        # Where a POST can go over the element's kept-alive stream instead of its requests
        # session (the same bytes reach the service; see `plain_http_target`), else None.
        connection = protocol.element.connection
        if service is not None:
            connection = attrs.evolve(connection, host=service.host, port=service.port)
        self.stream_target = plain_http_target(connection, TelenetTicketGateway.connection.default_port)
        self.stream_path = SERVICE_PATH if service is None else service.path

    def post(self, protocol: QActionProtocol, operation: Operation, body: bytes, then: Callable[[QActionProtocol, _Outcome], None]) -> _Outcome | None:
        """Post `body`: over the stream the answer goes to `then` when it comes (None is
        answered); through the requests session the outcome is answered at once."""
        headers = operation.headers()
        if self.stream_target is None:
            try:
                response = protocol.http.post(self.url, data=body, headers=headers)
            except requests.RequestException as error:
                return error
            return response.status_code, response.reason, response.content, lambda: response.text
        stream = protocol.serial
        stream.set_target(*self.stream_target)
        # A POST that went out is never sent again by the port (as a session does not): a retry is the buffer's, counted and logged.
        stream.start_http_exchange("POST", self.stream_path, body, headers, then=then)
        return None


class _Exchange:
    """One exchange with the service under way: what it asks for whom, and how its answer is read."""

    __slots__ = ("row", "operation", "parse", "attempt", "started")

    def __init__(self, row: _Buffered, operation: Operation, parse: Callable[[bytes], Any], attempt: int) -> None:
        self.row = row
        self.operation = operation
        self.parse = parse
        self.attempt = attempt  # 0: a result poll
        self.started = time.perf_counter()

    def judge(self, protocol: QActionProtocol, buffer: _Buffer, outcome: _Outcome) -> Any:
        """The parsed answer; `_Failure` says why there is none. Either way the exchange goes
        to the Communication table and the API Status (`_Buffer.write_down`)."""
        duration = round((time.perf_counter() - self.started) * 1000, 1)
        try:
            answer = self._judge(protocol, buffer, outcome)
        except _Failure as failure:
            buffer.exchanges_done.append((self, duration, failure.state, failure.status, str(failure)))
            raise
        buffer.exchanges_done.append((self, duration, OK, 200, _outcome(answer)))
        return answer

    def _judge(self, protocol: QActionProtocol, buffer: _Buffer, outcome: _Outcome) -> Any:
        parse = self.parse
        if isinstance(outcome, HttpAnswer):
            status, reason, content, text = outcome.status, outcome.reason, outcome.body, lambda: outcome.text
        elif isinstance(outcome, tuple):
            status, reason, content, text = outcome
        elif isinstance(outcome, (requests.Timeout, SerialTimeoutError)):
            raise _failed(protocol, buffer, TIMEOUT, 0, f"no answer within {protocol.element.connection.timeout:g} s", retry=True)
        elif isinstance(outcome, SerialConnectionError):
            raise _failed(protocol, buffer, CONNECTION_FAILED, 0, f"connection failed: {cell_text(str(outcome))}", retry=True)
        else:
            assert isinstance(outcome, requests.RequestException), outcome
            cause = getattr(outcome.args[0], "reason", None) if outcome.args else None  # what urllib3 saw underneath
            raise _failed(protocol, buffer, CONNECTION_FAILED, 0, f"connection failed: {cell_text(str(cause or outcome))}", retry=True)
        if status != 200:
            retry = status >= 500 or status in RETRIED_STATUSES
            detail = cell_text(text())
            try:
                parse(content)  # a SOAP Fault says more than the status
            except OsbFaultError as fault:
                retry = retry and not fault.client_fault  # a request the service cannot read stays unreadable
                detail = f"SOAP Fault {fault.code}: {cell_text(fault.text)}"
                if fault.client_fault:
                    raise _failed(protocol, buffer, REFUSED, status, f"HTTP {status} {reason}: {detail}", retry=False) from None
            except OsbAnswerError:
                pass
            raise _failed(protocol, buffer, HTTP_ERROR, status, f"HTTP {status} {reason}: {detail}", retry=retry)
        try:
            return parse(content)
        except OsbFaultError as fault:
            raise _failed(protocol, buffer, REFUSED if fault.client_fault else HTTP_ERROR, status, cell_text(str(fault)), retry=not fault.client_fault) from None
        except OsbAnswerError as error:
            raise _failed(protocol, buffer, INVALID_ANSWER, status, cell_text(str(error)), retry=True) from None

    def record(self, protocol: QActionProtocol, duration: float, status: int, outcome: str) -> None:
        """A row of the Communication table; the oldest go beyond Communication Max Rows."""
        number = int(protocol.get_parameter("Last Exchange Number") or 0) + 1
        protocol.set_parameter("Last Exchange Number", number)
        protocol.add_row(COMMUNICATION, [str(number), protocol.now(), self.row.key, self.operation.name, self.attempt, status, outcome, duration])
        excess = protocol.row_count(COMMUNICATION) - int(protocol.get_parameter("Communication Max Rows"))
        if excess > 0:  # rows are kept in the order added: the oldest exchanges first
            protocol.delete_row(COMMUNICATION, protocol.get_keys(COMMUNICATION)[:excess])


def _failed(protocol: QActionProtocol, buffer: _Buffer, state: int, status: int, message: str, *, retry: bool) -> _Failure:
    buffer.stopped = retry  # a service that did not answer is not asked again in this round
    return _Failure(message, retry=retry, state=state, status=status)


def _status(protocol: QActionProtocol, state: int, status: int, error: str) -> None:
    now = protocol.now()
    values: dict[int | str, Any] = {"API Status": state, "Last HTTP Status": status, "Last Attempt": now}
    if state == OK:
        values["Last Success"] = now
    else:
        values["Last Error"] = error
    changed = {name: value for name, value in values.items() if protocol.get_parameter(name) != value}  # most exchanges change only the times
    if changed:
        protocol.set_parameters(changed)


def service_url(protocol: QActionProtocol) -> str:
    """Where the requests go: the selected service's host, port and path, or, with none
    selected, `SERVICE_PATH` on the element's own connection."""
    service = selected_service(protocol)
    if service is None:
        return SERVICE_PATH
    return Connection(host=service.host, port=service.port).base_url(default_port=service.port) + service.path


def _outcome(answer: Any) -> str:
    """An answer in a few words, for the Communication table."""
    if isinstance(answer, list):
        return f"ACK: {len(answer)} tickets found"
    if isinstance(answer, OsbAck):
        return f"ACK: transaction {answer.transaction_id}"
    if isinstance(answer, (OsbNack, OsbNackError)):
        return f"NACK: {answer.reason}"
    assert isinstance(answer, TransactionResult)
    detail = answer.ticket_id or answer.reason
    return f"{answer.status}: {detail}" if detail else answer.status


# --------------------------------------------------------------------------------------------
# Working the buffer


class _Buffer:
    """What the Gateway keeps in memory about its Request Buffer between QActions, as a
    DataMiner QAction keeps state in its class's static members: every row's State, the
    unfinished requests in arrival order, the finished ones by Finished Time, the exchange with
    the service under way, and where requests go. Built from the table when the element starts
    (and on first use); every change of a row is written to the table before the QAction ends
    (`write_down`), so the table stays what is saved and shown.

    The buffer is worked by `pump`: one exchange at a time, the next chosen when the last one's
    answer came: due result polls and creates, updates and closes (in arrival order) take turns,
    so neither holds the other back (a create waiting behind a row of polls would leave the
    flow that sent it idle, polls behind a stream of creates would starve), then searches at
    the Search Rate. A round (a Buffer Processing, a new request) goes on until nothing is due
    or the service failed in a way that says it is not answering (`stopped`)."""

    def __init__(self, protocol: QActionProtocol) -> None:
        self.states: dict[str, int] = dict(protocol.get_column(BUFFER, "State"))
        self.counts = Counter(self.states.values())
        finished = protocol.get_column(BUFFER, "Finished Time")
        unfinished = [_Buffered.of(key, protocol.get_row(BUFFER, key)) for key, state in self.states.items() if state not in _FINISHED_STATES]
        self.open: dict[str, _Buffered] = {row.key: row for row in sorted(unfinished, key=lambda row: row.sequence)}
        ending = sorted((finished[key] or 0.0, key) for key, state in self.states.items() if state in _ENDING_STATES)
        self.ending: dict[str, float] = {key: when for when, key in ending}  # oldest first
        self.exchange: _Exchange | None = None
        self.polled_last = False  # the last exchange sent was a result poll: a create, update or close waiting goes next
        self.stopped = False
        self.shown: tuple[int, ...] = ()  # the counts last shown on the Buffer page
        self.replies: list[tuple[_Buffered, Any, str | None, bool]] = []  # (row, answer, error, final) to set on requesters
        # What an answer changes on the tables and the Communication page waits here until the
        # next request is on its way (`write_down`): the service works on it meanwhile.
        self.cells_due: dict[str, dict[str, Any]] = {}  # per buffer row, the cells to write
        self.exchanges_done: list[tuple[_Exchange, float, int, int, str]] = []  # (exchange, duration ms, API Status, HTTP status, outcome)
        self._service: _Service | None = None
        self._service_for: tuple[Any, ...] = ()

    def service(self, protocol: QActionProtocol) -> _Service:
        """Where requests go now (made again when the connection or the selected service changed)."""
        connection, service = protocol.element.connection, selected_service(protocol)
        if self._service is None or self._service_for[0] is not connection or self._service_for[1] != service:
            self._service, self._service_for = _Service(protocol, service), (connection, service)
        return self._service

    def write(self, key: str, **cells: Any) -> None:
        """Change cells of a buffer row (by column name, spaces as underscores) at the next `write_down`."""
        self.cells_due.setdefault(key, {}).update(cells)

    def write_down(self, protocol: QActionProtocol) -> None:
        """Write the rows' changed cells and the exchanges done (Communication table, API Status)."""
        due, self.cells_due = self.cells_due, {}
        for key, cells in due.items():
            if key in self.states:  # (not removed meanwhile)
                _write(protocol, key, **cells)
        done, self.exchanges_done = self.exchanges_done, []
        for exchange, duration, state, status, outcome in done:
            exchange.record(protocol, duration, status, outcome)
            _status(protocol, state, status, "" if state == OK else outcome)

    def add(self, row: _Buffered) -> None:
        self.states[row.key] = row.state
        self.counts[row.state] += 1
        self.open[row.key] = row

    def set_state(self, row: _Buffered, state: int, now: float) -> None:
        self.counts[self.states[row.key]] -= 1
        self.counts[state] += 1
        row.state = self.states[row.key] = state
        if state in _FINISHED_STATES:
            self.open.pop(row.key, None)
        if state in _ENDING_STATES and row.key not in self.ending:
            self.ending[row.key] = now

    # -- a round -----------------------------------------------------------------------------

    def pump(self, protocol: QActionProtocol) -> None:
        """Work the buffer until an exchange is under way (its answer goes on), nothing is due,
        or the service stopped answering."""
        now = protocol.now()
        self.remove_expired(protocol, now)
        for row in [row for row in self.open.values() if row.state == REPLY_PENDING and row.next_action <= now]:
            self.deliver_again(protocol, row, now)
        try:
            while self.exchange is None and not self.stopped:
                step = self.next_step(protocol, now)
                if step is None:
                    break
                row, operation, body, parse, attempt = step
                exchange = self.exchange = _Exchange(row, operation, parse, attempt)
                try:
                    outcome = self.service(protocol).post(protocol, operation, body, functools.partial(_answered, exchange=exchange))
                except BaseException:
                    self.exchange = None  # never sent (a bad service address, say): the next round tries again
                    raise
                if outcome is None:
                    break  # over the stream: its answer comes to `_answered`
                self.answered(protocol, exchange, outcome)
                self.write_down(protocol)
                self.deliver_replies(protocol)
        finally:
            # The tables change and answers go to their requesters once the next exchange is
            # under way: the service works on it meanwhile, while this work (and the requesters',
            # a flow going on) runs here.
            self.write_down(protocol)
            self.deliver_replies(protocol)
            self.write_down(protocol)  # what a reply that could not be set changed
        if self.exchange is None:
            self.show_depth(protocol)  # the round is over (shown once a round, as it moves fast)

    def next_step(self, protocol: QActionProtocol, now: float) -> tuple[_Buffered, Operation, bytes, Callable[[bytes], Any], int] | None:
        """The next exchange: a due result poll or the first create, update or close (one
        waiting for its retry holds the rest back), taking turns when both wait; else a search
        if the Search Rate allows."""
        poll: _Buffered | None = None
        high: _Buffered | None = None
        searches = []
        for row in self.open.values():
            state = row.state
            if state == AWAITING_RESULT:
                if poll is None and row.next_action <= now:
                    poll = row
            elif state in WAITING:
                if row.priority == HIGH:
                    high = high or row
                else:
                    searches.append(row)
        high_due = high is not None and high.next_action <= now  # else it waits for its retry, and the rest (searches too) behind it
        if poll is not None and (not high_due or not self.polled_last):
            self.polled_last = True
            return poll, GET_TRANSACTION_RESULT, transaction_result_request(poll.transaction_id), parse_transaction_result, 0
        self.polled_last = False
        if high is not None:
            return self._sending(protocol, high) if high_due else None
        return self._next_search(protocol, searches, now)

    def _next_search(self, protocol: QActionProtocol, searches: list[_Buffered], now: float) -> tuple[_Buffered, Operation, bytes, Callable[[bytes], Any], int] | None:
        """At most Search Rate a second: a budget of one second's searches at most, spent as they go."""
        interval = 1.0 / protocol.get_parameter("Search Rate")
        budget_span = max(interval, 1.0)
        shown = protocol.get_parameter("Next Search Time")
        next_search = now - budget_span if shown is None else shown
        chosen = None
        if next_search <= now:
            chosen = next((row for row in searches if row.next_action <= now), None)  # one waiting for its retry waits
            if chosen is not None:
                next_search = max(next_search, now - budget_span + interval) + interval
        if next_search != shown:
            protocol.set_parameter("Next Search Time", next_search)
        return None if chosen is None else self._sending(protocol, chosen)

    def _sending(self, protocol: QActionProtocol, row: _Buffered) -> tuple[_Buffered, Operation, bytes, Callable[[bytes], Any], int]:
        row.attempts += 1
        self.set_state(row, SENT, protocol.now())
        self.write(row.key, State=SENT, Attempts=row.attempts)
        operation = row.request.wire
        parse = parse_search_answer if operation is SEARCH_TICKET else functools.partial(parse_ticket_response, operation=operation)
        if not row.xml:
            row.xml = row.request.xml(row.key)
        return row, operation, row.xml, parse, row.attempts

    def answered(self, protocol: QActionProtocol, exchange: _Exchange, outcome: _Outcome) -> None:
        """The service's answer (or why none came) to the exchange under way."""
        self.exchange = None
        if exchange.attempt == 0:
            self.polled(protocol, exchange, outcome)
        else:
            self.sent(protocol, exchange, outcome)

    def sent(self, protocol: QActionProtocol, exchange: _Exchange, outcome: _Outcome) -> None:
        row, now = exchange.row, protocol.now()
        try:
            answer = exchange.judge(protocol, self, outcome)
        except _Failure as failure:
            self.failed_attempt(protocol, row, str(failure), retry=failure.retry)
            return
        if isinstance(answer, (OsbNack, OsbNackError)):
            self.finish(protocol, row, error=f"NACK: {answer.reason}")
        elif isinstance(answer, OsbAck):
            row.transaction_id = answer.transaction_id
            row.acknowledged = now
            row.next_action = now + protocol.get_parameter("Result Poll Interval")
            self.set_state(row, AWAITING_RESULT, now)
            self.write(row.key, State=AWAITING_RESULT, Transaction_ID=answer.transaction_id, Acknowledged_Time=now,
                   Next_Action_Time=row.next_action, Last_Error="")  # fmt: skip
            self.replies.append((row, {"stage": "ack", "transaction_id": answer.transaction_id}, None, False))
        else:  # the tickets a search found
            self.finish(protocol, row, answer={"stage": "result", "status": COMPLETED, "tickets": [ticket.as_dict() for ticket in answer]})

    def failed_attempt(self, protocol: QActionProtocol, row: _Buffered, error: str, *, retry: bool) -> None:
        if not retry:
            self.finish(protocol, row, error=error)
        elif row.attempts > int(protocol.get_parameter("Max Retries")):
            self.finish(protocol, row, error=f"{NO_ANSWER} {row.attempts} attempts: {error}")
        else:
            row.next_action = protocol.now() + protocol.get_parameter("Retry Interval")
            self.write(row.key, Last_Error=error, Next_Action_Time=row.next_action)

    def polled(self, protocol: QActionProtocol, exchange: _Exchange, outcome: _Outcome) -> None:
        """How an acknowledged create, update or close ended, as the service says."""
        row, now = exchange.row, protocol.now()
        try:
            result = exchange.judge(protocol, self, outcome)
        except _Failure as failure:
            error = str(failure)
        else:
            if result.status == COMPLETED:
                self.write(row.key, Ticket_ID=result.ticket_id)
                self.finish(protocol, row, answer={"stage": "result", "status": COMPLETED, "ticket_id": result.ticket_id})
                return
            if result.status == FAILED:
                self.finish(protocol, row, error=f"FAILED: {result.reason}")
                return
            error = ""  # PENDING
        timeout = protocol.get_parameter("Result Timeout")
        if row.acknowledged is not None and now - row.acknowledged >= timeout:
            self.finish(protocol, row, error=f"{NO_RESULT} {timeout:g} s of the ACK ({error or 'still ' + PENDING})")
            return
        row.next_action = now + protocol.get_parameter("Result Poll Interval")
        self.write(row.key, Next_Action_Time=row.next_action, Last_Error=error)

    def finish(self, protocol: QActionProtocol, row: _Buffered, *, answer: Any = None, error: str | None = None) -> None:
        now = row.finished = protocol.now()
        self.set_state(row, DONE if error is None else FAILED_STATE, now)
        self.write(row.key, State=row.state, Finished_Time=now, Last_Error=error or "")
        self.replies.append((row, answer, error, True))

    def deliver_replies(self, protocol: QActionProtocol) -> None:
        """Set the answers found on their requesters; a final one that cannot be set is kept."""
        replies = self.replies
        while replies:
            row, answer, error, final = replies.pop(0)
            if self.reply(protocol, row, answer, error) or not final:
                continue
            now = protocol.now()  # the requester cannot hear it now: kept for later
            self.set_state(row, REPLY_PENDING, now)
            self.open[row.key] = row
            row.next_action = now + protocol.get_parameter("Retry Interval")
            kept = json_text({"answer": answer, "error": error})
            self.write(row.key, State=REPLY_PENDING, Next_Action_Time=row.next_action, Undelivered_Reply=kept)
            protocol.log(f"the answer to request {row.key} could not be set on its requester {_requester(row)}: kept, and set again later", LogType.ERROR)

    def reply(self, protocol: QActionProtocol, row: _Buffered, answer: Any, error: str | None = None) -> bool:
        """Set the answer on the requester; False when that failed (see the element's log)."""
        if error is not None:
            protocol.log(f"request {row.key} ({row.request.operation} {row.request.ticket_type}) failed: {error}", LogType.ERROR)
        return bool(protocol.reply(row.reply_request, answer, error=error))

    def deliver_again(self, protocol: QActionProtocol, row: _Buffered, now: float) -> None:
        """A final answer the requester could not hear before: set again, and the row finished once it is."""
        kept = json.loads(protocol.get_cell(BUFFER, row.key, "Undelivered Reply") or "{}")
        answer, error = kept.get("answer"), kept.get("error")
        if not protocol.reply(row.reply_request, answer, error=error):
            row.next_action = now + protocol.get_parameter("Retry Interval")
            self.write(row.key, Next_Action_Time=row.next_action)
            return
        self.set_state(row, DONE if error is None else FAILED_STATE, now)
        self.write(row.key, State=row.state, Undelivered_Reply="")
        protocol.log(f"the answer to request {row.key} was set on its requester {_requester(row)} at last")

    def remove_expired(self, protocol: QActionProtocol, now: float) -> None:
        """Done, Failed and Reply Pending rows go once kept Finished Request Retention seconds."""
        keep = protocol.get_parameter("Finished Request Retention")
        expired = []
        for key, when in self.ending.items():  # oldest first
            if now - when < keep:
                break
            expired.append(key)
        if not expired:
            return
        for key in expired:
            if self.states[key] == REPLY_PENDING:
                protocol.log(f"the answer to request {key} was never set on its requester: dropped after {keep:g} s", LogType.ERROR)
        protocol.delete_row(BUFFER, expired)
        for key in expired:
            del self.ending[key]
            self.counts[self.states.pop(key)] -= 1
            self.open.pop(key, None)

    def show_depth(self, protocol: QActionProtocol) -> None:
        counts = self.counts
        shown = tuple(counts[state] for state in STATE_NAMES)
        if shown == self.shown:
            return
        self.shown = shown
        protocol.set_parameters({
            "Buffer Depth": counts[QUEUED] + counts[SENT] + counts[AWAITING_RESULT] + counts[REPLY_PENDING],
            "Queued Requests": counts[QUEUED], "Sent Requests": counts[SENT], "Awaiting Result Requests": counts[AWAITING_RESULT],
            "Done Requests": counts[DONE], "Failed Requests": counts[FAILED_STATE], "Reply Pending Requests": counts[REPLY_PENDING],
        })  # fmt: skip


_BUFFERS: weakref.WeakKeyDictionary[Element, _Buffer] = weakref.WeakKeyDictionary()


def _buffer(protocol: QActionProtocol, *, afresh: bool = False) -> _Buffer:
    """The element's `_Buffer` (built from the table when there is none, or `afresh`)."""
    element = protocol.element
    buffer = None if afresh else _BUFFERS.get(element)
    if buffer is None:
        buffer = _BUFFERS[element] = _Buffer(protocol)
    return buffer


def _answered(protocol: QActionProtocol, outcome: _Outcome, *, exchange: _Exchange) -> None:
    """An answer over the stream came (on the element's queue): handled, then the round goes on."""
    buffer = _buffer(protocol)
    if buffer.exchange is not exchange:
        return  # from before the buffer was built again (a restart)
    try:
        buffer.answered(protocol, exchange, outcome)
    except BaseException:
        buffer.write_down(protocol)  # what it changed before it failed stays, as a QAction's sets do
        raise
    buffer.pump(protocol)


def parse_search_answer(body: bytes) -> list[FoundTicket] | OsbNackError:
    """The tickets found, or the NACK as a value: a refused search is an answer, not a failure."""
    try:
        return parse_search_response(body)
    except OsbNackError as nack:
        return nack


# --------------------------------------------------------------------------------------------
# QActions


def take_ticket_request(protocol: QActionProtocol) -> None:
    """QAction 1, on Ticket Request: buffer the request (or refuse it), then work the buffer."""
    try:
        request = protocol.request
    except MessageFormatError as error:  # nobody to answer: said in the log
        protocol.log(f"Ticket Request ignored: {error}", LogType.ERROR)
        return
    try:
        ticket_request, xml = TicketRequest.from_body(request.body, request.id)
    except TicketRequestError as error:
        protocol.log(f"request {request.id} refused: {error}", LogType.ERROR)
        protocol.reply(request, error=f"refused: {error}")
        return
    if protocol.exists(BUFFER, request.id):
        protocol.log(f"request {request.id} is already in the buffer; the repeat is ignored", LogType.ERROR)
        return
    sequence = int(protocol.get_parameter("Last Sequence") or 0) + 1
    protocol.set_parameter("Last Sequence", sequence)
    address = request.reply_to
    now = protocol.now()
    kept: dict[str, Any] = {"operation": ticket_request.operation, "fields": dict(ticket_request.fields)}
    if ticket_request.request_key:
        kept["request_key"] = ticket_request.request_key
    saved = _sorted_json(kept)
    row = {
        "Request ID": request.id, "Requester": f"{address.agent_id}/{address.element_id}/{address.parameter}",
        "Operation": ticket_request.operation.capitalize(), "Ticket Type": ticket_request.ticket_type,
        "Priority": LOW if ticket_request.operation == "search" else HIGH, "State": QUEUED, "Attempts": 0, "Queued Time": now,
        "Last Error": "", "Transaction ID": "", "Ticket ID": "", "Next Action Time": now, "Acknowledged Time": None,
        "Finished Time": None, "Sequence": sequence, "Request Fields": saved, "Undelivered Reply": "",
    }  # fmt: skip
    protocol.add_row(BUFFER, [row[name] for name in _COLUMNS])
    buffer = _buffer(protocol)
    buffer.add(_Buffered(request.id, address, ticket_request, row["Priority"], QUEUED, 0, now, "", now, None, None, sequence, xml))
    work_buffer(protocol)


def work_buffer(protocol: QActionProtocol) -> None:
    """QAction 2, every second (and after each new request): poll results, send what is due."""
    buffer = _buffer(protocol)
    buffer.stopped = False  # a new round asks the service again
    buffer.pump(protocol)


def resume_buffer(protocol: QActionProtocol) -> None:
    """QAction 3, after start-up: what the buffer kept is due (a restart keeps its RequestIds)."""
    now = protocol.now()
    resumed = 0
    for key, state in protocol.get_column(BUFFER, "State").items():
        if state in (QUEUED, SENT, AWAITING_RESULT, REPLY_PENDING):
            _write(protocol, key, Next_Action_Time=now)
            resumed += 1
    if resumed:
        protocol.log(f"resuming {resumed} buffered requests")
    protocol.set_parameter("Next Search Time", None)
    _buffer(protocol, afresh=True)  # what an exchange under way before the stop was is gone
    # Sent by the first Buffer Processing, not now: the requesters starting with the system
    # (after this element, maybe) are then there to hear the answers.


# --------------------------------------------------------------------------------------------
# The protocol


def _column(pid: int, name: str, kind: Any = None, *, key: bool = False, description: str = "") -> Column:
    return Column(pid, name, kind if kind is not None else String(), key=key, description=description)


class TelenetTicketGateway(Protocol):
    """The Telenet Ticket Gateway connector (see the module's text): buffers ticket requests
    from any element and sends them one at a time to the selected ticketing service."""

    name = "Telenet Ticket Gateway"
    version = "1.0.0.1"
    description = "Buffers ticket requests from any element and sends them one at a time to the OSB ticketing service."
    connection = HttpConnection(default_port=80)
    pages = (
        Page("Buffer", order=0),
        Page("Communication", order=1),
        Page("Configuration", order=2),
        Page("Connection Details", order=3),
    )
    parameters = (
        Parameter(10, "Ticket Request", String(), write=True, default="",
                  description="Where other elements send their requests (protocol.send_request); see the module's help."),
        # Buffer
        Parameter(20, "Buffer Depth", Number(0), default=0, page="Buffer", description="Requests not finished yet, or whose answer the requester is still to hear."),
        Parameter(21, "Queued Requests", Number(0), default=0, page="Buffer"),
        Parameter(22, "Sent Requests", Number(0), default=0, page="Buffer", description="Sent without an answer yet: waiting for a retry."),
        Parameter(23, "Awaiting Result Requests", Number(0), default=0, page="Buffer"),
        Parameter(24, "Done Requests", Number(0), default=0, page="Buffer"),
        Parameter(25, "Failed Requests", Number(0), default=0, page="Buffer"),
        Parameter(27, "Reply Pending Requests", Number(0), default=0, page="Buffer",
                  description="Finished, their answer not yet set on the requester (stopped, say): set again every Retry Interval."),
        Parameter(26, "Last Sequence", Number(0), default=0, save=True, description="The arrival number of the latest request."),
        # Communication
        Parameter(30, "API Status", Discrete({
            NOT_CONTACTED: "Not Contacted", OK: "OK", TIMEOUT: "Timeout", CONNECTION_FAILED: "Connection Failed",
            HTTP_ERROR: "HTTP Error", INVALID_ANSWER: "Invalid Answer", REFUSED: "Request Refused",
        }), default=NOT_CONTACTED, page="Communication"),
        Parameter(31, "Last HTTP Status", Number(0, 999), default=0, page="Communication", description="0: no answer came"),
        Parameter(32, "Last Error", String(), default="", page="Communication"),
        Parameter(33, "Last Success", DateTime(), page="Communication"),
        Parameter(34, "Last Attempt", DateTime(), page="Communication"),
        Parameter(35, "Next Search Time", DateTime(), page="Communication", description="When the Search Rate lets the next search go."),
        Parameter(36, "Last Exchange Number", Number(0), default=0),
        # Configuration
        Parameter(100, "Search Rate", Number(0.01, 100, "/s", decimals=2), write=True, default=1, save=True, page="Configuration",
                  description="Searches sent per second at most."),
        Parameter(101, "Max Retries", Number(0, 10), write=True, default=3, save=True, page="Configuration",
                  description="Attempts after the first when the service does not answer (timeout, connection, 5xx, unreadable answer)."),
        Parameter(102, "Retry Interval", Number(1, 3600, "s"), write=True, default=5, save=True, page="Configuration"),
        Parameter(103, "Result Poll Interval", Number(1, 3600, "s"), write=True, default=2, save=True, page="Configuration",
                  description="How often the result of an acknowledged create, update or close is asked for."),
        Parameter(104, "Result Timeout", Number(10, 7 * 86400, "s"), write=True, default=3600, save=True, page="Configuration",
                  description="An acknowledged request without a result this long after its ACK fails."),
        Parameter(105, "Finished Request Retention", Number(0, 7 * 86400, "s"), write=True, default=3600, save=True, page="Configuration",
                  description="How long Done and Failed requests stay in the buffer."),
        Parameter(106, "Communication Max Rows", Number(1, 10000), write=True, default=100, save=True, page="Configuration"),
        # Connection Details
        *service_info_parameters(200, "Connection Details", "requests go to (none selected: the element's own connection)"),
    )  # fmt: skip
    tables = (
        Table(1000, BUFFER, save=True, page="Buffer", columns=(
            _column(1001, "Request ID", key=True, description="The requester's request id, sent as RequestId unless the body gave a request_key."),
            _column(1002, "Requester", description="agent/element/parameter the answers go to"),
            _column(1003, "Operation"), _column(1004, "Ticket Type"),
            _column(1005, "Priority", Discrete({HIGH: "High", LOW: "Low"})),
            _column(1006, "State", Discrete(STATE_NAMES)),
            _column(1007, "Attempts", Number(0)), _column(1008, "Queued Time", DateTime()), _column(1009, "Last Error"),
            _column(1010, "Transaction ID"), _column(1011, "Ticket ID"),
            _column(1012, "Next Action Time", DateTime(), description="When it is next sent, or its result next asked for."),
            _column(1013, "Acknowledged Time", DateTime()), _column(1014, "Finished Time", DateTime()),
            _column(1015, "Sequence", Number(0), description="Arrival order."),
            _column(1016, "Request Fields", description="The request's operation, fields and request_key (JSON), to send it again after a restart."),
            _column(1017, "Undelivered Reply", description="A Reply Pending row's answer (JSON), set on the requester again."),
        )),
        Table(2000, COMMUNICATION, page="Communication", columns=(
            _column(2001, "Exchange", key=True), _column(2002, "Time", DateTime()), _column(2003, "Request ID"),
            _column(2004, "Operation"), _column(2005, "Attempt", Number(0), description="0: a result poll"),
            _column(2006, "HTTP Status", Number(0, 999), description="0: no answer came"), _column(2007, "Result"),
            _column(2008, "Duration", Number(0, None, "ms", decimals=1)),
        )),
        service_info_table(3000, "Connection Details"),
    )  # fmt: skip
    timers = (Timer(1, seconds=1, qactions=(2,), at_startup=False, name="Buffer Processing"),)
    qactions = (
        QAction(1, take_ticket_request, triggers=(10,), name="Ticket Request"),
        QAction(2, work_buffer, name="Buffer Processing"),
        QAction(3, resume_buffer, after_startup=True, name="Resume Buffer"),
        QAction(4, import_csv, triggers=(201,), name="Import CSV"),
        QAction(5, export_csv, triggers=(202,), name="Export CSV"),
        QAction(6, select_service, triggers=(210,), name="Service Selection"),
        QAction(7, show_active_service, after_startup=True, name="Show Active Service"),
    )


__all__ = ["BODY_FIELDS", "OPERATIONS", "OUTCOME_UNKNOWN", "TelenetTicketGateway", "TicketRequest", "TicketRequestError"]
