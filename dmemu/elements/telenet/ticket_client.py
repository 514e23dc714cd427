"""Telenet Ticket Client: the interface between the alarm-started flows and the ticketing service.

What the connector's help page says, and where it lives here:

* **Serial main connection**: the element's own IP address/host and port (default 8650) are
  placeholders; every search goes to the service chosen in *Service Selection*, whose host and
  port are set on the serial port before each exchange (``protocol.serial.set_target``, the
  "dynamic ip" of REFERENCE §6). A search is an HTTP/1.1 ``POST`` of a ``SearchTicketRequest``
  (`osb_messages.search_request`) over that TCP stream.
* **Connection Details page**: the *Service Info Table*, changed only by *Import CSV* and shown
  back by *Export CSV*, both on the file at *CSV File Path* (`service_info`: a malformed file is
  refused with its line and reason, the table unchanged); *Service Selection* (one of the
  table's services, anything else refused); the lock (*LockGuidId*, *Lock Time*);
  the *Configuration* page button.
* **Configuration sub-page**: the names of the related elements (Ticket Gateway, Topology
  Database, Heartbeat Receiver), the maximum rows of the Communication - Response Table, the
  lock expiry time, the heartbeat interval, and *Lock Status*: set to Unlocked it forces the
  client free whoever holds it ("force an unlock via the Lock Status parameter on the
  Configuration subpage"), which is logged; set to Locked by hand it is refused (only a flow's
  Lock Request locks). The sub-page opens from Connection Details.
* **The lock**: a flow sets *Lock Request* to ``{"action": "lock", "guid": ...}``; the QAction,
  on the element's queue (so never two at once), grants it when the client is unlocked or its
  lock expired (no command from its holder for *Lock Expiry Time*), and answers on *Lock
  Reply*. Every command carries the holder's GUID; a command or a release with any other GUID
  is refused, so two flows never act through one client, and a flow whose lock was forced open
  or expired hears so at its next command. While a Gateway request of its holder is pending
  (the flow is waiting for the Gateway, whose answers renew the lock) a lock lasts the
  Gateway's *Result Timeout* longer, by when the Gateway has answered: a lock held past that
  is a dead flow's. With the Gateway element gone no answer can come, and it expires as usual.
* **Communication page**: *Processing IAS Request Busy Status* (Busy while a search or a
  Gateway request runs; a user setting it to Not Busy ends a wait that will not end, logged,
  and the waiting flow is told; setting it to Busy by hand is refused), *Client Processing Data* (what happens now), and the *Communication - Response
  Table*: every search with its answer or failure, times and duration, at most *Response Table
  Max Rows* rows, the oldest dropped first.
* **Search Results page**: *Ninas Network Path Details*, copied from the Topology Database
  element's ``Topology`` table when this element starts (only then, as the help page says), and
  the *Searched Tickets* of the flow holding the client (emptied when a new flow takes it).
* **Searches answer later**: a search is sent over the serial connection and the client goes on
  (Busy) until its answer comes (`_search_answered`); the search under way is kept in *Pending
  Search*, so a flow whose search a stop cut off is told at the next start, not after its timeout.
  A forced unlock or Not Busy abandons it as it abandons a Gateway request (`_abandon_pending`).
* **Creates, updates and closes** are forwarded to the Ticket Gateway's ``Ticket Request``
  (`protocol.send_request`); its answers land on *Gateway Reply* and are passed on to the flow.
* **Heartbeat**: every *Heartbeat Interval* seconds a beat goes to the Heartbeat Receiver
  element's ``Heartbeat`` parameter.

Flows talk to a client with JSON on its parameters (`lock_message`, `command_message`): the
automatic flow (`flow.py`) is one such flow. *Lock Reply* answers ``{"action", "guid",
"granted", "reason"}``; *Client Command Reply* answers ``{"id", "guid", "final", "ok", "error",
...}``: a search's ``tickets`` (and ``retryable``: whether the same search may work a moment
later), a Gateway request's ``stage`` ``ack`` (not final) then ``result`` with its ``ticket_id``.
A search's duration in the Communication - Response Table is measured on the wall clock (the
exchange's real time); its request and response times are the DMS clock's.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from typing import Any

import attrs

from dmemu.elements.heartbeat_receiver import heartbeat_text
from dmemu.protocol import (
    Column,
    DateTime,
    Discrete,
    DmemuError,
    ElementNotFoundError,
    HttpAnswer,
    LogType,
    MessageFormatError,
    Number,
    Page,
    PageButton,
    Parameter,
    Protocol,
    QAction,
    QActionProtocol,
    Reply,
    SerialConnection,
    SetStatus,
    String,
    Table,
    Timer,
)
from dmemu.protocol.json_text import dumps as json_text

from .osb_messages import SEARCH_TICKET, OsbError, OsbFaultError, OsbNackError, parse_search_response, search_request
from .service_info import (
    ServiceSelectionError,
    export_csv,
    import_csv,
    select_service,
    selected_service,
    service_info_parameters,
    service_info_table,
    show_active_service,
)
from .texts import cell_text, counted

PROTOCOL_NAME = "Telenet Ticket Client"
DEFAULT_PORT = 8650
UNLOCKED, LOCKED = 0, 1
NOT_BUSY, BUSY = 0, 1
SUCCESS, FAILURE = 1, 0
IDLE = "Idle"
_wall_clock = time.monotonic  # a search's Duration is the exchange's real time (a test gives its own)
TIMER_PERIOD = 5  # seconds between two looks at the lock expiry and the heartbeat

# Names the flows and the other elements use (one place, so a rename cannot split them).
TOPOLOGY_TABLE = "Ninas Network Path Details"
SEARCHED_TICKETS_TABLE = "Searched Tickets"
RESPONSE_TABLE = "Communication - Response Table"
LOCK_REQUEST, LOCK_REPLY = "Lock Request", "Lock Reply"
CLIENT_COMMAND, COMMAND_REPLY = "Client Command", "Client Command Reply"
GATEWAY_REQUEST_PARAMETER = "Ticket Request"  # on the Ticket Gateway
GATEWAY_RESULT_TIMEOUT, DEFAULT_GATEWAY_RESULT_TIMEOUT = "Result Timeout", 3600.0  # on the Ticket Gateway
HEARTBEAT_PARAMETER = "Heartbeat"  # on the Heartbeat Receiver
TOPOLOGY_SOURCE_TABLE = "Topology"  # on the Topology Database
TOPOLOGY_ADDRESS, TOPOLOGY_PATH = "Network Element Address", "Ninas Network Path Details"


class ManualSetRefusedError(DmemuError, ValueError):
    """A user set Lock Status or the Busy Status to a value only the client itself sets."""


# --------------------------------------------------------------------------------------------
# Messages between flows and the client


def lock_message(action: str, guid: str, note: str = "") -> str:
    """What a flow sets on *Lock Request*: ``action`` ``lock`` or ``release``; a release may say
    why the flow ends (`note`, shown in Client Processing Data)."""
    return json_text({"action": action, "guid": guid, "note": note})


def command_message(guid: str, command_id: str, command: str, **fields: Any) -> str:
    """What a flow sets on *Client Command*: ``search`` (ticket_type, network_element, alarm_id,
    status) or ``ticket`` (operation, ticket_type, fields, and optionally request_key: the
    Gateway's, see `ticket_gateway`), under the lock of `guid`."""
    return json_text({"guid": guid, "id": command_id, "command": command, **fields})


def read_message(text: Any, what: str) -> dict[str, Any]:
    """A JSON object set on one of the client's parameters; `MessageFormatError` otherwise."""
    try:
        message = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        message = None
    if not isinstance(message, dict):
        raise MessageFormatError(f"{what}: {str(text)[:80]!r} is not a JSON object")
    return message


def _short(guid: str) -> str:
    return guid[:8]


def _changed(protocol: QActionProtocol, values: dict[int | str, Any]) -> dict[int | str, Any]:
    """The values that differ from what the parameters hold."""
    return {name: value for name, value in values.items() if protocol.get_parameter(name) != value}


def _update(protocol: QActionProtocol, values: dict[int | str, Any]) -> None:
    """Set the values that differ from what the parameters hold: an unchanged Busy Status or
    Lock Status set again would only run its QAction for nothing."""
    changed = _changed(protocol, values)
    if changed:
        protocol.set_parameters(changed)


# --------------------------------------------------------------------------------------------
# Start-up, the Service Info Table and Service Selection


def element_started(protocol: QActionProtocol) -> None:
    """After startup: the topology is copied (only now), the service in use is shown again."""
    protocol.set_parameters({"Processing IAS Request Busy Status": NOT_BUSY, "Client Processing Data": IDLE})
    _copy_topology(protocol)
    show_active_service(protocol)
    if protocol.get_parameter("Pending Gateway Request"):
        # A Gateway request sent before a restart: its answer still lands here and is passed on.
        protocol.set_parameter("Processing IAS Request Busy Status", BUSY)
    pending_search = protocol.get_parameter("Pending Search")
    if pending_search:
        # A search whose answer the stop cut off: its flow hears so now, not after its timeout.
        search = json.loads(pending_search)
        protocol.set_parameter("Pending Search", "")
        protocol.log(f"search {search['id']} of flow {search['guid']} was cut off by a stop: no answer", LogType.ERROR)
        _reply_command(protocol, search["id"], search["guid"], error="the client stopped during the search: no answer came", retryable=True, tickets=[])


def _copy_topology(protocol: QActionProtocol) -> None:
    source = (protocol.get_parameter("Topology Database Element") or "").strip()
    if not source:
        protocol.set_parameter("Topology Status", "No Topology Database element configured")
        return
    try:
        table = protocol.get_element_parameter(source, TOPOLOGY_SOURCE_TABLE)
        rows = [[row[TOPOLOGY_ADDRESS], row[TOPOLOGY_PATH] or ""] for row in table.rows()]
    except (DmemuError, AttributeError, KeyError, TypeError) as error:
        message = f"Topology not copied from {source!r}: {type(error).__name__}: {cell_text(str(error))}; the last copy is kept"
        protocol.log(message, LogType.ERROR)
        protocol.set_parameter("Topology Status", message)
        return
    protocol.fill_array(TOPOLOGY_TABLE, rows)
    copied = f"{counted(len(rows), 'network element')} copied from {source!r}"
    protocol.set_parameters({"Topology Status": copied, "Topology Copy Time": protocol.now()})
    protocol.log(f"Topology: {copied}")


# --------------------------------------------------------------------------------------------
# The lock


def _lock_expired(protocol: QActionProtocol) -> bool:
    """No command from the holder for Lock Expiry Time; for the Gateway's Result Timeout longer
    while a Gateway request it sent is pending (see the module's text). Forcing the Busy Status to
    Not Busy ends such a wait at once."""
    renewed = protocol.get_parameter("Lock Renewed") or protocol.get_parameter("Lock Time") or 0
    limit = protocol.get_parameter("Lock Expiry Time")
    if protocol.get_parameter("Pending Gateway Request"):
        limit += _gateway_result_timeout(protocol)
    return protocol.now() - renewed >= limit


def _gateway_result_timeout(protocol: QActionProtocol) -> float:
    """How long the Gateway may take to answer an acknowledged request: its Result Timeout (a
    Gateway without one: an hour, its default); 0 when the Gateway element does not exist."""
    gateway = (protocol.get_parameter("Ticket Gateway Element") or "").strip()
    try:
        return float(protocol.get_element_parameter(gateway, GATEWAY_RESULT_TIMEOUT) or 0)
    except ElementNotFoundError:
        return 0.0
    except DmemuError:  # another kind of Gateway
        return DEFAULT_GATEWAY_RESULT_TIMEOUT


def _holder(protocol: QActionProtocol) -> str:
    """The GUID holding the lock, or "" when the client is free. LockGuidId tells, not Lock
    Status: a user's set of that one takes effect when its QAction runs (`lock_status_set`)."""
    return protocol.get_parameter("LockGuidId") or ""


def _unlock(protocol: QActionProtocol, why: str) -> None:
    """Free the client; a Gateway request still pending is abandoned and its flow told `why`."""
    _abandon_pending(protocol, why)
    _update(protocol, {"Lock Status": UNLOCKED, "LockGuidId": "", "Lock Time": None, "Lock Renewed": None, "Processing IAS Request Busy Status": NOT_BUSY})


def _reply_lock(protocol: QActionProtocol, request: dict[str, Any], granted: bool, reason: str = "") -> None:
    protocol.set_parameter(LOCK_REPLY, json_text({"action": request.get("action"), "guid": request.get("guid"), "granted": granted, "reason": reason}))


def lock_request(protocol: QActionProtocol) -> None:
    """Lock Request: a flow takes the client (when free or expired) or releases it (its own lock only)."""
    request = read_message(protocol.trigger_value, LOCK_REQUEST)
    action, guid = request.get("action"), request.get("guid")
    if not isinstance(guid, str) or not guid:
        raise MessageFormatError(f"{LOCK_REQUEST}: no GUID in {protocol.trigger_value!r}")
    holder, now = _holder(protocol), protocol.now()
    if action == "lock":
        if holder and holder != guid and not _lock_expired(protocol):
            since = protocol.get_parameter("Lock Time") or now
            _reply_lock(protocol, request, False, f"locked by flow {holder} for {now - since:g} s")
            return
        taken: dict[int | str, Any] = {}
        if holder != guid:  # a new flow: nothing of the last one's goes on, its own search results only
            if holder:
                idle = now - (protocol.get_parameter("Lock Renewed") or now)
                protocol.log(f"the lock of flow {holder} expired ({idle:g} s without a command) and was taken by flow {guid}", LogType.ERROR)
            _abandon_pending(protocol, f"the lock of flow {holder} expired" if holder else f"flow {guid} took the client")
            protocol.clear_table(SEARCHED_TICKETS_TABLE)
            taken = {
                "Lock Status": LOCKED, "LockGuidId": guid, "Lock Time": now,
                "Processing IAS Request Busy Status": NOT_BUSY, "Client Processing Data": f"Locked by flow {_short(guid)}",
            }  # fmt: skip
        _update(protocol, {**taken, "Lock Renewed": now})  # one update (each costs): the lock taken, then renewed
        _reply_lock(protocol, request, True)
    elif action == "release":
        if holder != guid:
            reason = f"the lock is held by flow {holder}" if holder else "the client is not locked"
            protocol.log(f"release by flow {guid} refused (stale GUID): {reason}", LogType.ERROR)
            _reply_lock(protocol, request, False, f"stale GUID: {reason}")
            return
        note = request.get("note") or ""
        _unlock(protocol, f"flow {guid} released the client")
        shown = f"Released by flow {_short(guid)}" + (f": {cell_text(note)}" if note else "")
        protocol.set_parameter("Client Processing Data", shown)
        _reply_lock(protocol, request, True)
    else:
        raise MessageFormatError(f"{LOCK_REQUEST}: action {action!r} is neither 'lock' nor 'release'")


def lock_status_set(protocol: QActionProtocol) -> None:
    """Lock Status set by a user (Configuration sub-page): Unlocked forces the client free,
    whoever holds it (logged, the holder's next command refused); Locked is refused, since only
    a flow's Lock Request takes the client (`ManualSetRefusedError`)."""
    holder = protocol.get_parameter("LockGuidId") or ""  # Lock Status already holds the user's value
    if protocol.trigger_value == LOCKED:
        if holder:
            return  # locked already: nothing changes
        protocol.set_parameter("Lock Status", UNLOCKED)
        raise ManualSetRefusedError("Lock Status cannot be set to Locked by hand: a flow takes the client with a Lock Request; it stays Unlocked")
    if not holder:
        protocol.log("Lock Status set to Unlocked: the client was not locked")
        return
    since = DateTime().display(protocol.get_parameter("Lock Time"))
    protocol.log(f"Lock Status forced to Unlocked: the lock of flow {holder} (held since {since}) was forced open by a user", LogType.ERROR)
    _unlock(protocol, "the lock was forced open by a user")
    protocol.set_parameter("Client Processing Data", f"Unlocked by a user (was held by flow {_short(holder)})")


def lock_expiry_check(protocol: QActionProtocol) -> None:
    """Timer: a lock whose flow sent nothing for Lock Expiry Time is freed (its flow presumably died)."""
    holder = _holder(protocol)
    if holder and _lock_expired(protocol):
        idle = protocol.now() - (protocol.get_parameter("Lock Renewed") or protocol.get_parameter("Lock Time") or 0)
        protocol.log(f"the lock of flow {holder} expired: no command for {idle:g} s", LogType.ERROR)
        _unlock(protocol, f"the lock of flow {holder} expired")
        protocol.set_parameter("Client Processing Data", f"Lock of flow {_short(holder)} expired")


# --------------------------------------------------------------------------------------------
# Commands: searches over the serial connection, ticket requests through the Gateway


def _reply_command(protocol: QActionProtocol, command_id: str, guid: str, *, final: bool = True, error: str | None = None, **answer: Any) -> None:
    reply = {"id": command_id, "guid": guid, "final": final, "ok": error is None, "error": error, **answer}
    protocol.set_parameter(COMMAND_REPLY, json_text(reply))


def client_command(protocol: QActionProtocol) -> None:
    """Client Command: a search or a ticket request from the flow holding the lock; anything
    else (another GUID, the client busy) is refused on Client Command Reply."""
    command = read_message(protocol.trigger_value, CLIENT_COMMAND)
    guid, command_id = command.get("guid") or "", command.get("id") or ""
    if not isinstance(command_id, str) or not command_id:
        raise MessageFormatError(f"{CLIENT_COMMAND}: no command id in {protocol.trigger_value!r}")
    holder = _holder(protocol)
    if guid != holder:
        reason = f"the lock is held by flow {holder}" if holder else "the client is not locked"
        protocol.log(f"command {command_id} of flow {guid} refused (stale GUID): {reason}", LogType.ERROR)
        _reply_command(protocol, command_id, guid, error=f"stale GUID {guid}: {reason}")
        return
    if protocol.get_parameter("Processing IAS Request Busy Status") == BUSY:
        _reply_command(protocol, command_id, guid, error=f"the client is busy: {protocol.get_parameter('Client Processing Data')}")
        return
    _update(protocol, {"Lock Renewed": protocol.now()})  # first: whatever fails next, the holder was alive
    kind = command.get("command")
    if kind == "search":
        _search(protocol, command)
    elif kind == "ticket":
        _forward_to_gateway(protocol, command)
    else:
        _reply_command(protocol, command_id, guid, error=f"unknown command {kind!r}; commands: search, ticket")


@attrs.frozen
class _Search:
    """A search on its way: what the Communication - Response Table and the reply need."""

    guid: str
    command_id: str
    ticket_type: str
    network_element: str
    alarm_id: Any
    service: str
    what: str
    started: float  # the DMS clock
    wall_start: float
    pending: str = attrs.field(init=False)  # its *Pending Search* value while its answer is awaited (written once, compared once)

    @pending.default
    def _pending_text(self) -> str:
        return json_text({"id": self.command_id, "guid": self.guid})


def _search(protocol: QActionProtocol, command: dict[str, Any]) -> None:
    """Send the search to the selected service; its answer comes to `_search_answered` (the
    client stays Busy meanwhile, so its holder's next command waits for it)."""
    ticket_type, network_element = command.get("ticket_type") or "MO", command.get("network_element") or ""
    alarm_id, status = command.get("alarm_id"), command.get("status")
    service = selected_service(protocol)
    what = f"{ticket_type} tickets of {network_element!r}" + (f" for alarm {alarm_id}" if alarm_id not in (None, "") else "")
    search = _Search(command["guid"], command["id"], ticket_type, network_element, alarm_id, service.name if service else "", what, protocol.now(), _wall_clock())
    _update(protocol, {
        "Processing IAS Request Busy Status": BUSY, "Client Processing Data": f"Searching {what}",
        "Pending Search": search.pending,
    })  # fmt: skip
    try:
        if service is None:
            raise ServiceSelectionError("no ticketing service is selected (Service Selection)")
        body = search_request(ticket_type, network_element, alarm_id, status)
        serial = protocol.serial
        serial.set_target(service.host, service.port)
        serial.start_http_exchange("POST", service.path, body, SEARCH_TICKET.headers(), then=functools.partial(_search_answered, search=search))
    except (DmemuError, OSError, ValueError) as failure:  # a bad service or field
        _search_done(protocol, search, [], failure)


def _search_answered(protocol: QActionProtocol, answer: HttpAnswer | Exception, *, search: _Search) -> None:
    """The service's answer to a search (or why none came)."""
    tickets: list[Any] = []
    failure: BaseException | None = answer if isinstance(answer, Exception) else None
    if isinstance(answer, HttpAnswer):
        try:
            try:
                tickets = parse_search_response(answer.body)
            except OsbError as error:
                raise OsbError(f"HTTP {answer.status} {answer.reason}: {error}") from error
            if answer.status != 200:
                raise OsbError(f"HTTP {answer.status} {answer.reason}")
        except (DmemuError, ValueError) as error:
            tickets, failure = [], error
    _search_done(protocol, search, tickets, failure)


def _search_done(protocol: QActionProtocol, search: _Search, tickets: list[Any], failure: BaseException | None) -> None:
    error = None if failure is None else cell_text(f"{type(failure).__name__}: {failure}")
    retryable = failure is not None and _transient(failure)  # whether the same search may well work a moment later
    duration_ms = round((_wall_clock() - search.wall_start) * 1000, 1)
    found = ", ".join(ticket.ticket_id for ticket in tickets) or "none"
    response = f"{counted(len(tickets), 'ticket')} found: {found}" if error is None else f"Failed: {error}"
    _record_response(protocol, [
        search.command_id, search.started, protocol.now(), duration_ms, search.service, search.ticket_type, search.network_element,
        "" if search.alarm_id is None else str(search.alarm_id), SUCCESS if error is None else FAILURE, response, search.guid,
    ])  # fmt: skip
    if protocol.get_parameter("Pending Search") != search.pending:
        # Abandoned meanwhile (a forced unlock or Not Busy, an expired lock): its flow was told.
        protocol.log(f"search {search.command_id} of flow {search.guid} answered after it was abandoned: not passed on")
        return
    protocol.set_parameter("Pending Search", "")
    if tickets:
        protocol.fill_array_no_delete(SEARCHED_TICKETS_TABLE, [_ticket_row(ticket) for ticket in tickets])
    _update(protocol, {"Processing IAS Request Busy Status": NOT_BUSY, "Client Processing Data": f"Search of {search.what}: {response}"})
    if error is not None:
        protocol.log(f"search {search.command_id} of {search.what} failed: {error}", LogType.ERROR)
    _reply_command(protocol, search.command_id, search.guid, error=error, retryable=retryable, tickets=[ticket.as_dict() for ticket in tickets])


def _transient(failure: BaseException) -> bool:
    """A failure the same search may not meet again: no answer, a broken connection, a service
    fault of its own, an answer that is not what a search answers, a refusal (NACK). A fault
    blaming the request, a bad request or no service selected stay as they are."""
    cause = failure.__cause__ if isinstance(failure, OsbError) and failure.__cause__ is not None else failure
    if isinstance(cause, OsbNackError):
        return True
    if isinstance(cause, ServiceSelectionError) or (isinstance(cause, OsbFaultError) and cause.client_fault):
        return False
    return isinstance(cause, (DmemuError, OSError)) and not isinstance(cause, ValueError)


def _ticket_row(ticket: Any) -> list[Any]:
    return [
        ticket.ticket_id, ticket.ticket_type, ticket.status, ticket.severity, ticket.network_element, ticket.alarm_id,
        ticket.path_details, ticket.description, ticket.created_time, ticket.updated_time,
    ]  # fmt: skip


def _record_response(protocol: QActionProtocol, row: list[Any]) -> None:
    """A row of the Communication - Response Table; the oldest go beyond Response Table Max Rows."""
    # add_row costs a third of a one-row fill; a Request ID met again (a flow's GUID and count
    # repeat only by hand) updates its row as the fill always did.
    if not protocol.add_row(RESPONSE_TABLE, row):
        protocol.fill_array_no_delete(RESPONSE_TABLE, [row])
    _trim_responses(protocol)


def _trim_responses(protocol: QActionProtocol) -> None:
    keys = protocol.get_keys(RESPONSE_TABLE)  # oldest first: rows are kept in insertion order
    excess = len(keys) - int(protocol.get_parameter("Response Table Max Rows"))
    if excess > 0:
        protocol.delete_row(RESPONSE_TABLE, keys[:excess])


def max_rows_changed(protocol: QActionProtocol) -> None:
    """Response Table Max Rows changed: the oldest rows beyond it go at once."""
    _trim_responses(protocol)


def _forward_to_gateway(protocol: QActionProtocol, command: dict[str, Any]) -> None:
    guid, command_id = command["guid"], command["id"]
    gateway = (protocol.get_parameter("Ticket Gateway Element") or "").strip()
    if not gateway:
        _reply_command(protocol, command_id, guid, error="no Ticket Gateway element is configured (Configuration page)")
        return
    operation, ticket_type, fields = command.get("operation"), command.get("ticket_type") or "MO", command.get("fields") or {}
    body = {"operation": operation, "ticket_type": ticket_type, "fields": fields}
    if command.get("request_key"):  # the flow's id of what it asks: the same again after an answer never heard
        body["request_key"] = command["request_key"]
    request_id = protocol.send_request(gateway, GATEWAY_REQUEST_PARAMETER, body, "Gateway Reply")
    pending = {"request": request_id, "id": command_id, "guid": guid, "operation": operation, "ticket_type": ticket_type}
    what = f"{operation} {ticket_type} ticket" + (f" {fields['ticket_id']}" if fields.get("ticket_id") else "")
    protocol.set_parameters({
        "Pending Gateway Request": json_text(pending), "Processing IAS Request Busy Status": BUSY,
        "Client Processing Data": f"Waiting for the Ticket Gateway: {what}",
    })  # fmt: skip


def _abandon_pending(protocol: QActionProtocol, why: str) -> None:
    """The flow waiting for the Gateway or for a search is told it will not hear; the late
    answer is ignored."""
    for parameter, named in _PENDING_WORK:
        text = protocol.get_parameter(parameter)
        if text:
            pending = json.loads(text)
            protocol.set_parameter(parameter, "")
            protocol.log(f"{named(pending)} abandoned: {why}", LogType.ERROR)
            _reply_command(protocol, pending["id"], pending["guid"], error=f"abandoned: {why}")


# The holder's work waiting for an answer: its parameter, and how the log names it.
_PENDING_WORK: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("Pending Gateway Request", lambda pending: f"Gateway request {pending['request']} ({pending['operation']})"),
    ("Pending Search", lambda pending: f"search {pending['id']} of flow {pending['guid']}"),
)


def _pending(protocol: QActionProtocol) -> bool:
    """Whether a search or a Gateway request of the holder waits for its answer (Busy)."""
    return bool(protocol.get_parameter("Pending Gateway Request") or protocol.get_parameter("Pending Search"))


def gateway_reply(protocol: QActionProtocol) -> None:
    """Gateway Reply: the Gateway's ACK, result or failure, passed on to the flow waiting for it."""
    reply = Reply.from_json(protocol.trigger_value)
    text = protocol.get_parameter("Pending Gateway Request")
    pending = json.loads(text) if text else None
    if pending is None or pending["request"] != reply.id:
        protocol.log(f"Gateway reply to request {reply.id} ignored: no flow waits for it (abandoned, or from before a forced unlock)")
        return
    guid, command_id, what = pending["guid"], pending["id"], f"{pending['operation']} {pending['ticket_type']} ticket"
    # A flow waiting for the Gateway is alive: its lock renewed, with an ACK's other sets.
    renewed = _changed(protocol, {"Lock Renewed": protocol.now()}) if _holder(protocol) == guid else {}
    body = reply.body if isinstance(reply.body, dict) else {}
    if reply.ok and body.get("stage") == "ack":
        waiting = f"Ticket Gateway: {what} acknowledged (transaction {body.get('transaction_id')}), waiting for its result"
        protocol.set_parameters({**renewed, "Client Processing Data": waiting})
        _reply_command(protocol, command_id, guid, final=False, stage="ack", transaction_id=body.get("transaction_id"))
        return
    if renewed:
        protocol.set_parameters(renewed)
    if not reply.ok:
        outcome = f"{what} failed: {cell_text(reply.error or '')}"
        protocol.log(f"Gateway request {reply.id}: {outcome}", LogType.ERROR)
        _reply_command(protocol, command_id, guid, error=reply.error)
    else:
        outcome = f"{what} {body.get('status', 'done')}: {body.get('ticket_id') or ''}".rstrip(": ")
        _reply_command(protocol, command_id, guid, stage="result", status=body.get("status"), ticket_id=body.get("ticket_id"), tickets=body.get("tickets"))
    _update(protocol, {"Pending Gateway Request": "", "Processing IAS Request Busy Status": NOT_BUSY, "Client Processing Data": outcome})


def busy_status_set(protocol: QActionProtocol) -> None:
    """Processing IAS Request Busy Status set by a user: Not Busy ends a wait for the Gateway or
    a search that will not end (logged; the waiting flow is told); Busy is refused unless the
    client is busy already (`ManualSetRefusedError`)."""
    pending = _pending(protocol)
    if protocol.trigger_value == BUSY:
        if pending:
            return  # busy already: nothing changes
        protocol.set_parameter("Processing IAS Request Busy Status", NOT_BUSY)
        raise ManualSetRefusedError("Processing IAS Request Busy Status cannot be forced to Busy: only a search or a Gateway request makes the client busy; it stays Not Busy")
    if not pending:
        protocol.log("Processing IAS Request Busy Status set to Not Busy: the client was not busy")
        return
    protocol.log("Processing IAS Request Busy Status forced to Not Busy by a user", LogType.ERROR)
    _abandon_pending(protocol, "the client was forced Not Busy by a user")
    protocol.set_parameters({"Processing IAS Request Busy Status": NOT_BUSY, "Client Processing Data": "Forced Not Busy by a user"})


# --------------------------------------------------------------------------------------------
# Heartbeat


def heartbeat_period(interval: float) -> float:
    """The period beats really go at: the timer looks every `TIMER_PERIOD` seconds, so an
    interval between two looks is the next look's (7 s -> 10 s). The beat announces this, so
    the receiver never expects beats faster than they come."""
    return math.ceil(interval / TIMER_PERIOD) * TIMER_PERIOD


def heartbeat_check(protocol: QActionProtocol) -> None:
    """Timer: a heartbeat to the Heartbeat Receiver once Heartbeat Interval has passed."""
    receiver = (protocol.get_parameter("Heartbeat Receiver Element") or "").strip()
    if not receiver:
        return
    now, interval = protocol.now(), protocol.get_parameter("Heartbeat Interval")
    last = protocol.get_parameter("Last Heartbeat")
    if last is not None and now - last < interval:
        return
    beat = heartbeat_text(protocol.element_name, heartbeat_period(interval), now)
    status = protocol.set_element_parameter(receiver, HEARTBEAT_PARAMETER, beat)
    protocol.set_parameters({"Last Heartbeat": now, "Heartbeat Status": "OK" if status is SetStatus.OK else f"Failed: {status.value} (see the log)"})


# --------------------------------------------------------------------------------------------
# The protocol


def _text(pid: int, name: str, *, key: bool = False) -> Column:
    return Column(pid, name, String(), key=key)


class TelenetTicketClient(Protocol):
    """The Telenet Ticket Client connector (see the module's text): searches over its serial
    connection to the selected service, the lock flows take, Gateway forwarding, heartbeats."""

    name = PROTOCOL_NAME
    version = "1.0.0.1"
    description = "Interface between alarm-started ticketing flows and the Telenet ticketing service (OSB): searches, locks, Gateway requests."
    connection = SerialConnection(default_port=DEFAULT_PORT)
    pages = (
        Page("Connection Details", order=0),
        Page("Configuration", order=1, parent="Connection Details"),
        Page("Communication", order=2),
        Page("Search Results", order=3),
    )
    parameters = (
        # Connection Details
        *service_info_parameters(100, "Connection Details", "searches go to"),

        Parameter(121, "LockGuidId", String(), default="", save=True, page="Connection Details"),
        Parameter(122, "Lock Time", DateTime(), save=True, page="Connection Details"),
        Parameter(123, "Lock Renewed", DateTime(), save=True, description="The lock holder's last command: its lock expires from here."),
        Parameter(130, "Configuration", PageButton("Configuration"), page="Connection Details"),
        # Configuration (sub-page)
        Parameter(200, "Ticket Gateway Element", String(), write=True, default="", save=True, page="Configuration"),
        Parameter(201, "Topology Database Element", String(), write=True, default="", save=True, page="Configuration",
                  description="Its Topology table is copied when this element starts."),
        Parameter(202, "Heartbeat Receiver Element", String(), write=True, default="", save=True, page="Configuration"),
        Parameter(210, "Response Table Max Rows", Number(1, 10000), write=True, default=100, save=True, page="Configuration",
                  description="The most rows the Communication - Response Table keeps; the oldest go first."),
        Parameter(211, "Lock Expiry Time", Number(1, 86400, "s"), write=True, default=300, save=True, page="Configuration",
                  description="A lock whose flow sent no command for this long is freed (the Gateway's Result Timeout longer while it waits for the Gateway)."),
        Parameter(212, "Heartbeat Interval", Number(TIMER_PERIOD, 86400, "s"), write=True, default=60, save=True, page="Configuration",
                  description=f"Beats go on the {TIMER_PERIOD} s timer: an interval between two of its looks is the next look's."),
        Parameter(120, "Lock Status", Discrete({UNLOCKED: "Unlocked", LOCKED: "Locked"}), write=True, default=UNLOCKED, save=True, page="Configuration",
                  description="Whether a flow holds the client; set to Unlocked to force it free (logged). Only a flow locks it."),
        # Communication
        Parameter(300, "Processing IAS Request Busy Status", Discrete({NOT_BUSY: "Not Busy", BUSY: "Busy"}), write=True, default=NOT_BUSY, page="Communication",
                  description="Busy while a search or a Gateway request runs; set to Not Busy to end a wait that will not end (the waiting flow is told)."),
        Parameter(302, "Client Processing Data", String(), default=IDLE, page="Communication"),
        Parameter(310, "Last Heartbeat", DateTime(), page="Communication"),
        Parameter(311, "Heartbeat Status", String(), default="", page="Communication"),
        # Search Results
        Parameter(500, "Topology Status", String(), default="", page="Search Results"),
        Parameter(501, "Topology Copy Time", DateTime(), save=True, page="Search Results"),
        # Between flows, the Gateway and the client (no page)
        Parameter(700, LOCK_REQUEST, String(), write=True, default=""),
        Parameter(701, LOCK_REPLY, String(), default=""),
        Parameter(710, CLIENT_COMMAND, String(), write=True, default=""),
        Parameter(711, COMMAND_REPLY, String(), default=""),
        Parameter(720, "Gateway Reply", String(), write=True, default=""),
        Parameter(721, "Pending Gateway Request", String(), default="", save=True,
                  description="The Gateway request a flow waits for (JSON), kept across restarts."),
        Parameter(722, "Pending Search", String(), default="", save=True,
                  description="The search under way (JSON): a stop cuts its answer off, and the flow is told at the next start."),
    )  # fmt: skip
    tables = (
        service_info_table(1000, "Connection Details"),
        Table(400, RESPONSE_TABLE, save=True, page="Communication", columns=(
            _text(401, "Request ID", key=True), Column(402, "Request Time", DateTime()), Column(403, "Response Time", DateTime()),
            Column(404, "Duration", Number(0, None, "ms", 1)), _text(405, "Service"), _text(406, "Ticket Type"),
            _text(407, "Network Element"), _text(408, "Alarm ID"), Column(409, "Result", Discrete({SUCCESS: "Success", FAILURE: "Failure"})),
            _text(410, "Response"), _text(411, "Flow GUID"),
        )),
        Table(600, TOPOLOGY_TABLE, save=True, page="Search Results", columns=(
            _text(601, "Network Element Address", key=True), _text(602, "Path Details"),
        )),
        Table(650, SEARCHED_TICKETS_TABLE, page="Search Results", columns=(
            _text(651, "Ticket ID", key=True), _text(652, "Ticket Type"), _text(653, "Status"), _text(654, "Severity"),
            _text(655, "Network Element"), _text(656, "Alarm ID"), _text(657, "Path Details"), _text(658, "Description"),
            _text(659, "Created Time"), _text(660, "Updated Time"),
        )),
    )  # fmt: skip
    timers = (Timer(1, seconds=TIMER_PERIOD, qactions=(20, 21), name="Lock Expiry and Heartbeat"),)
    qactions = (
        QAction(1, element_started, after_startup=True, name="Element Started"),
        QAction(2, import_csv, triggers=(101,), name="Import CSV"),
        QAction(3, export_csv, triggers=(102,), name="Export CSV"),
        QAction(4, select_service, triggers=(110,), name="Service Selection"),
        QAction(5, lock_request, triggers=(700,), name="Lock Request"),
        QAction(6, lock_status_set, triggers=(120,), name="Lock Status Set", user_sets_only=True),
        QAction(7, client_command, triggers=(710,), name="Client Command"),
        QAction(8, gateway_reply, triggers=(720,), name="Gateway Reply"),
        QAction(9, busy_status_set, triggers=(300,), name="Busy Status Set", user_sets_only=True),
        QAction(10, max_rows_changed, triggers=(210,), name="Response Table Max Rows Changed"),
        QAction(20, lock_expiry_check, name="Lock Expiry Check"),
        QAction(21, heartbeat_check, name="Heartbeat"),
    )


__all__ = [
    "PROTOCOL_NAME",
    "ManualSetRefusedError",
    "ServiceSelectionError",
    "TelenetTicketClient",
    "command_message",
    "lock_message",
    "read_message",
]
