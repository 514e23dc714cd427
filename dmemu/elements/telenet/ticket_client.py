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
  table's services, anything else refused); the lock (*Lock Status*, *LockGuidId*, *Lock Time*);
  the *Configuration* page button.
* **Configuration sub-page**: the names of the related elements (Ticket Gateway, Topology
  Database, Heartbeat Receiver), the maximum rows of the Communication - Response Table, the
  lock expiry time, the heartbeat interval, and *Force Unlock* (the help page's "Lock Status on
  the Configuration subpage"), which is logged.
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
  Gateway request runs; *Force Not Busy* ends a wait that will not end, and the waiting flow
  is told), *Client Processing Data* (what happens now), and the *Communication - Response
  Table*: every search with its answer or failure, times and duration, at most *Response Table
  Max Rows* rows, the oldest dropped first.
* **Search Results page**: *Ninas Network Path Details*, copied from the Topology Database
  element's ``Topology`` table when this element starts (only then, as the help page says), and
  the *Searched Tickets* of the flow holding the client (emptied when a new flow takes it).
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

import json
import time
from typing import Any

from dmemu.protocol import (
    Button,
    Column,
    DateTime,
    Discrete,
    DmemuError,
    ElementNotFoundError,
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

from .osb_messages import SEARCH_TICKET, OsbError, OsbFaultError, OsbNackError, parse_search_response, search_request
from .service_info import (
    ServiceInfo,
    ServiceInfoCsvError,
    export_service_table,
    import_service_table,
    service_info_columns,
)

PROTOCOL_NAME = "Telenet Ticket Client"
DEFAULT_PORT = 8650
UNLOCKED, LOCKED = 0, 1
NOT_BUSY, BUSY = 0, 1
SUCCESS, FAILURE = 1, 0
IDLE = "Idle"
_TEXT_LIMIT = 300  # characters of an error kept in a cell

# Names the flows and the other elements use (one place, so a rename cannot split them).
SERVICE_INFO_TABLE = "Service Info Table"
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


class ServiceSelectionError(DmemuError, ValueError):
    """Service Selection named a service the Service Info Table does not hold."""


# --------------------------------------------------------------------------------------------
# Messages between flows and the client


def lock_message(action: str, guid: str, note: str = "") -> str:
    """What a flow sets on *Lock Request*: ``action`` ``lock`` or ``release``; a release may say
    why the flow ends (`note`, shown in Client Processing Data)."""
    return json.dumps({"action": action, "guid": guid, "note": note})


def command_message(guid: str, command_id: str, command: str, **fields: Any) -> str:
    """What a flow sets on *Client Command*: ``search`` (ticket_type, network_element, alarm_id,
    status) or ``ticket`` (operation, ticket_type, fields, and optionally request_key: the
    Gateway's, see `ticket_gateway`), under the lock of `guid`."""
    return json.dumps({"guid": guid, "id": command_id, "command": command, **fields})


def read_message(text: Any, what: str) -> dict[str, Any]:
    """A JSON object set on one of the client's parameters; `MessageFormatError` otherwise."""
    try:
        message = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        message = None
    if not isinstance(message, dict):
        raise MessageFormatError(f"{what}: {str(text)[:80]!r} is not a JSON object")
    return message


def _cut(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _short(guid: str) -> str:
    return guid[:8]


# --------------------------------------------------------------------------------------------
# Start-up, the Service Info Table and Service Selection


def element_started(protocol: QActionProtocol) -> None:
    """After startup: the topology is copied (only now), the service in use is shown again."""
    protocol.set_parameters({"Processing IAS Request Busy Status": NOT_BUSY, "Client Processing Data": IDLE})
    _copy_topology(protocol)
    _show_active_service(protocol)
    if protocol.get_parameter("Pending Gateway Request"):
        # A Gateway request sent before a restart: its answer still lands here and is passed on.
        protocol.set_parameter("Processing IAS Request Busy Status", BUSY)


def _copy_topology(protocol: QActionProtocol) -> None:
    source = (protocol.get_parameter("Topology Database Element") or "").strip()
    if not source:
        protocol.set_parameter("Topology Status", "No Topology Database element configured")
        return
    try:
        table = protocol.get_element_parameter(source, TOPOLOGY_SOURCE_TABLE)
        rows = [[row[TOPOLOGY_ADDRESS], row[TOPOLOGY_PATH] or ""] for row in table.rows()]
    except (DmemuError, AttributeError, KeyError, TypeError) as error:
        message = f"Topology not copied from {source!r}: {type(error).__name__}: {_cut(str(error))}; the last copy is kept"
        protocol.log(message, LogType.ERROR)
        protocol.set_parameter("Topology Status", message)
        return
    protocol.fill_array(TOPOLOGY_TABLE, rows)
    copied = f"{_count(len(rows), 'network element')} copied from {source!r}"
    protocol.set_parameters({"Topology Status": copied, "Topology Copy Time": protocol.now()})
    protocol.log(f"Topology: {copied}")


def _selected_service(protocol: QActionProtocol) -> ServiceInfo | None:
    name = protocol.get_parameter("Selected Service") or ""
    if not name or not protocol.exists(SERVICE_INFO_TABLE, name):
        return None
    return ServiceInfo.from_row(protocol.get_row(SERVICE_INFO_TABLE, name))


def _show_active_service(protocol: QActionProtocol) -> None:
    service = _selected_service(protocol)
    protocol.set_parameter("Active Service", "" if service is None else f"{service.name} ({service.host}:{service.port}{service.path})")


def import_csv(protocol: QActionProtocol) -> None:
    """Import CSV: the table becomes the file's services, or stays as it was (the status says why)."""
    path = protocol.get_parameter("CSV File Path") or ""
    try:
        services = import_service_table(protocol, SERVICE_INFO_TABLE, path)
    except ServiceInfoCsvError as error:
        protocol.set_parameter("CSV Status", f"Import refused: {error}; the Service Info Table is unchanged")
        raise
    status = f"Imported {_count(len(services), 'service')} from {path.strip()}"
    selected = protocol.get_parameter("Selected Service") or ""
    if selected and selected not in {service.name for service in services}:
        protocol.set_parameters({"Selected Service": "", "Service Selection": ""})
        protocol.log(f"Service Selection {selected!r} cleared: the imported table no longer lists it", LogType.ERROR)
        status += f"; the selected service {selected!r} is no longer listed, so none is selected"
    protocol.set_parameter("CSV Status", status)
    _show_active_service(protocol)


def export_csv(protocol: QActionProtocol) -> None:
    """Export CSV: the table written to CSV File Path, in the format Import CSV reads."""
    path = protocol.get_parameter("CSV File Path") or ""
    try:
        services = export_service_table(protocol, SERVICE_INFO_TABLE, path)
    except ServiceInfoCsvError as error:
        protocol.set_parameter("CSV Status", f"Export failed: {error}")
        raise
    protocol.set_parameter("CSV Status", f"Exported {_count(len(services), 'service')} to {path.strip()}")


def select_service(protocol: QActionProtocol) -> None:
    """Service Selection: one of the table's services (empty: none); anything else is refused
    and the selection goes back to the service in use."""
    chosen = (protocol.trigger_value or "").strip()
    if chosen and not protocol.exists(SERVICE_INFO_TABLE, chosen):
        previous = protocol.get_parameter("Selected Service") or ""
        protocol.set_parameter("Service Selection", previous)
        known = ", ".join(repr(key) for key in protocol.get_keys(SERVICE_INFO_TABLE)) or "none (import a CSV first)"
        raise ServiceSelectionError(f"Service Selection {chosen!r} refused: the Service Info Table lists {known}; {previous or 'no service'!r} stays selected")
    if chosen != protocol.get_parameter("Selected Service"):
        protocol.log(f"Service Selection: {chosen or 'none'}")
    protocol.set_parameter("Selected Service", chosen)
    _show_active_service(protocol)


# --------------------------------------------------------------------------------------------
# The lock


def _lock_expired(protocol: QActionProtocol) -> bool:
    """No command from the holder for Lock Expiry Time; for the Gateway's Result Timeout longer
    while a Gateway request it sent is pending (see the module's text)."""
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
    """The GUID holding the lock, or "" when the client is free."""
    if protocol.get_parameter("Lock Status") != LOCKED:
        return ""
    return protocol.get_parameter("LockGuidId") or ""


def _unlock(protocol: QActionProtocol, why: str) -> None:
    """Free the client; a Gateway request still pending is abandoned and its flow told `why`."""
    _abandon_pending(protocol, why)
    protocol.set_parameters({"Lock Status": UNLOCKED, "LockGuidId": "", "Lock Time": None, "Lock Renewed": None})
    protocol.set_parameter("Processing IAS Request Busy Status", NOT_BUSY)


def _reply_lock(protocol: QActionProtocol, request: dict[str, Any], granted: bool, reason: str = "") -> None:
    protocol.set_parameter(LOCK_REPLY, json.dumps({"action": request.get("action"), "guid": request.get("guid"), "granted": granted, "reason": reason}))


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
        if holder != guid:  # a new flow: nothing of the last one's goes on, its own search results only
            if holder:
                idle = now - (protocol.get_parameter("Lock Renewed") or now)
                protocol.log(f"the lock of flow {holder} expired ({idle:g} s without a command) and was taken by flow {guid}", LogType.ERROR)
            _abandon_pending(protocol, f"the lock of flow {holder} expired" if holder else f"flow {guid} took the client")
            protocol.clear_table(SEARCHED_TICKETS_TABLE)
            protocol.set_parameters({"Lock Status": LOCKED, "LockGuidId": guid, "Lock Time": now})
            protocol.set_parameters({"Processing IAS Request Busy Status": NOT_BUSY, "Client Processing Data": f"Locked by flow {_short(guid)}"})
        protocol.set_parameter("Lock Renewed", now)
        _reply_lock(protocol, request, True)
    elif action == "release":
        if holder != guid:
            reason = f"the lock is held by flow {holder}" if holder else "the client is not locked"
            protocol.log(f"release by flow {guid} refused (stale GUID): {reason}", LogType.ERROR)
            _reply_lock(protocol, request, False, f"stale GUID: {reason}")
            return
        note = request.get("note") or ""
        _unlock(protocol, f"flow {guid} released the client")
        shown = f"Released by flow {_short(guid)}" + (f": {_cut(note)}" if note else "")
        protocol.set_parameter("Client Processing Data", shown)
        _reply_lock(protocol, request, True)
    else:
        raise MessageFormatError(f"{LOCK_REQUEST}: action {action!r} is neither 'lock' nor 'release'")


def force_unlock(protocol: QActionProtocol) -> None:
    """Force Unlock (Configuration page): the client is freed whoever holds it; logged."""
    holder = _holder(protocol)
    if not holder:
        protocol.log("Force Unlock: the client was not locked")
        return
    since = DateTime().display(protocol.get_parameter("Lock Time"))
    protocol.log(f"Force Unlock: the lock of flow {holder} (held since {since}) was forced open by a user", LogType.ERROR)
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
    protocol.set_parameter(COMMAND_REPLY, json.dumps(reply))


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
    protocol.set_parameter("Lock Renewed", protocol.now())
    kind = command.get("command")
    if kind == "search":
        _search(protocol, command)
    elif kind == "ticket":
        _forward_to_gateway(protocol, command)
    else:
        _reply_command(protocol, command_id, guid, error=f"unknown command {kind!r}; commands: search, ticket")


def _search(protocol: QActionProtocol, command: dict[str, Any]) -> None:
    guid, command_id = command["guid"], command["id"]
    ticket_type, network_element = command.get("ticket_type") or "MO", command.get("network_element") or ""
    alarm_id, status = command.get("alarm_id"), command.get("status")
    service = _selected_service(protocol)
    started, wall_start = protocol.now(), time.monotonic()
    what = f"{ticket_type} tickets of {network_element!r}" + (f" for alarm {alarm_id}" if alarm_id not in (None, "") else "")
    tickets: list[Any] = []
    error: str | None = None
    retryable = False  # whether the same search may well work a moment later
    protocol.set_parameters({"Processing IAS Request Busy Status": BUSY, "Client Processing Data": f"Searching {what}"})
    try:
        if service is None:
            raise ServiceSelectionError("no ticketing service is selected (Service Selection)")
        body = search_request(ticket_type, network_element, alarm_id, status)
        serial = protocol.serial
        serial.set_target(service.host, service.port)
        answer = serial.http_exchange("POST", service.path, body, SEARCH_TICKET.headers())
        try:
            tickets = parse_search_response(answer.body)
        except OsbError as failure:
            raise OsbError(f"HTTP {answer.status} {answer.reason}: {failure}") from failure
        if answer.status != 200:
            raise OsbError(f"HTTP {answer.status} {answer.reason}")
    except (DmemuError, OSError, ValueError) as failure:  # serial, OSB, a bad service or field
        error = _cut(f"{type(failure).__name__}: {failure}")
        retryable = _transient(failure)
    duration_ms = round((time.monotonic() - wall_start) * 1000, 1)
    found = ", ".join(ticket.ticket_id for ticket in tickets) or "none"
    response = f"{_count(len(tickets), 'ticket')} found: {found}" if error is None else f"Failed: {error}"
    _record_response(protocol, [
        command_id, started, protocol.now(), duration_ms, service.name if service else "", ticket_type, network_element,
        "" if alarm_id is None else str(alarm_id), SUCCESS if error is None else FAILURE, response, guid,
    ])  # fmt: skip
    if tickets:
        protocol.fill_array_no_delete(SEARCHED_TICKETS_TABLE, [_ticket_row(ticket) for ticket in tickets])
    protocol.set_parameters({"Processing IAS Request Busy Status": NOT_BUSY, "Client Processing Data": f"Search of {what}: {response}"})
    if error is not None:
        protocol.log(f"search {command_id} of {what} failed: {error}", LogType.ERROR)
    _reply_command(protocol, command_id, guid, error=error, retryable=retryable, tickets=[ticket.as_dict() for ticket in tickets])


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
    protocol.fill_array_no_delete(RESPONSE_TABLE, [row])
    _trim_responses(protocol)


def _trim_responses(protocol: QActionProtocol) -> None:
    keys = protocol.get_keys(RESPONSE_TABLE)  # oldest first: rows are kept in insertion order
    excess = len(keys) - int(protocol.get_parameter("Response Table Max Rows"))
    if excess > 0:
        protocol.delete_row(RESPONSE_TABLE, keys[:excess])


def max_rows_changed(protocol: QActionProtocol) -> None:
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
        "Pending Gateway Request": json.dumps(pending), "Processing IAS Request Busy Status": BUSY,
        "Client Processing Data": f"Waiting for the Ticket Gateway: {what}",
    })  # fmt: skip


def _abandon_pending(protocol: QActionProtocol, why: str) -> None:
    """The flow waiting for the Gateway is told it will not hear; the late answer is ignored."""
    text = protocol.get_parameter("Pending Gateway Request")
    if not text:
        return
    pending = json.loads(text)
    protocol.set_parameter("Pending Gateway Request", "")
    protocol.log(f"Gateway request {pending['request']} ({pending['operation']}) abandoned: {why}", LogType.ERROR)
    _reply_command(protocol, pending["id"], pending["guid"], error=f"abandoned: {why}")


def gateway_reply(protocol: QActionProtocol) -> None:
    """Gateway Reply: the Gateway's ACK, result or failure, passed on to the flow waiting for it."""
    reply = Reply.from_json(protocol.trigger_value)
    text = protocol.get_parameter("Pending Gateway Request")
    pending = json.loads(text) if text else None
    if pending is None or pending["request"] != reply.id:
        protocol.log(f"Gateway reply to request {reply.id} ignored: no flow waits for it (abandoned, or from before a forced unlock)")
        return
    guid, command_id, what = pending["guid"], pending["id"], f"{pending['operation']} {pending['ticket_type']} ticket"
    if _holder(protocol) == guid:
        protocol.set_parameter("Lock Renewed", protocol.now())  # a flow waiting for the Gateway is alive
    body = reply.body if isinstance(reply.body, dict) else {}
    if not reply.ok:
        outcome = f"{what} failed: {_cut(reply.error or '')}"
        protocol.log(f"Gateway request {reply.id}: {outcome}", LogType.ERROR)
        _reply_command(protocol, command_id, guid, error=reply.error)
    elif body.get("stage") == "ack":
        protocol.set_parameter("Client Processing Data", f"Ticket Gateway: {what} acknowledged (transaction {body.get('transaction_id')}), waiting for its result")
        _reply_command(protocol, command_id, guid, final=False, stage="ack", transaction_id=body.get("transaction_id"))
        return
    else:
        outcome = f"{what} {body.get('status', 'done')}: {body.get('ticket_id') or ''}".rstrip(": ")
        _reply_command(protocol, command_id, guid, stage="result", status=body.get("status"), ticket_id=body.get("ticket_id"), tickets=body.get("tickets"))
    protocol.set_parameters({"Pending Gateway Request": "", "Processing IAS Request Busy Status": NOT_BUSY, "Client Processing Data": outcome})


def force_not_busy(protocol: QActionProtocol) -> None:
    """Force Not Busy: a wait that will not end is ended; the flow waiting hears so."""
    protocol.log("Processing IAS Request Busy Status forced to Not Busy by a user", LogType.ERROR)
    _abandon_pending(protocol, "the client was forced Not Busy by a user")
    protocol.set_parameters({"Processing IAS Request Busy Status": NOT_BUSY, "Client Processing Data": "Forced Not Busy by a user"})


# --------------------------------------------------------------------------------------------
# Heartbeat


def heartbeat_check(protocol: QActionProtocol) -> None:
    """Timer: a heartbeat to the Heartbeat Receiver once Heartbeat Interval has passed."""
    receiver = (protocol.get_parameter("Heartbeat Receiver Element") or "").strip()
    if not receiver:
        return
    now, interval = protocol.now(), protocol.get_parameter("Heartbeat Interval")
    last = protocol.get_parameter("Last Heartbeat")
    if last is not None and now - last < interval:
        return
    beat = json.dumps({"source": protocol.element_name, "interval": interval, "time": now})
    status = protocol.set_element_parameter(receiver, HEARTBEAT_PARAMETER, beat)
    protocol.set_parameters({"Last Heartbeat": now, "Heartbeat Status": "OK" if status is SetStatus.OK else f"Failed: {status.value} (see the log)"})


# --------------------------------------------------------------------------------------------
# The protocol


def _text(pid: int, name: str, *, key: bool = False) -> Column:
    return Column(pid, name, String(), key=key)


class TelenetTicketClient(Protocol):
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
        Parameter(100, "CSV File Path", String(), write=True, default="", save=True, page="Connection Details",
                  description="The CSV file Import CSV reads and Export CSV writes."),
        Parameter(101, "Import CSV", Button("Import"), write=True, page="Connection Details"),
        Parameter(102, "Export CSV", Button("Export"), write=True, page="Connection Details"),
        Parameter(103, "CSV Status", String(), default="", page="Connection Details"),
        Parameter(110, "Service Selection", String(), write=True, default="", save=True, page="Connection Details",
                  description="The ticketing service searches go to: a Service Name of the Service Info Table."),
        Parameter(111, "Active Service", String(), default="", page="Connection Details"),
        Parameter(112, "Selected Service", String(), default="", save=True, description="The accepted Service Selection."),
        Parameter(120, "Lock Status", Discrete({UNLOCKED: "Unlocked", LOCKED: "Locked"}), default=UNLOCKED, save=True, page="Connection Details"),
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
        Parameter(212, "Heartbeat Interval", Number(1, 86400, "s"), write=True, default=60, save=True, page="Configuration"),
        Parameter(220, "Force Unlock", Button("Unlock"), write=True, page="Configuration",
                  description="The help page's Lock Status on the Configuration sub-page: frees the client whoever holds it (logged)."),
        # Communication
        Parameter(300, "Processing IAS Request Busy Status", Discrete({NOT_BUSY: "Not Busy", BUSY: "Busy"}), default=NOT_BUSY, page="Communication"),
        Parameter(301, "Force Not Busy", Button("Not Busy"), write=True, page="Communication",
                  description="Ends a wait for the Gateway that will not end; the waiting flow is told."),
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
    )  # fmt: skip
    tables = (
        Table(1000, SERVICE_INFO_TABLE, service_info_columns(1001), save=True, page="Connection Details",
              description="The ticketing services; changed only by Import CSV."),
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
    timers = (Timer(1, seconds=5, qactions=(20, 21), name="Lock Expiry and Heartbeat"),)
    qactions = (
        QAction(1, element_started, after_startup=True, name="Element Started"),
        QAction(2, import_csv, triggers=(101,), name="Import CSV"),
        QAction(3, export_csv, triggers=(102,), name="Export CSV"),
        QAction(4, select_service, triggers=(110,), name="Service Selection"),
        QAction(5, lock_request, triggers=(700,), name="Lock Request"),
        QAction(6, force_unlock, triggers=(220,), name="Force Unlock"),
        QAction(7, client_command, triggers=(710,), name="Client Command"),
        QAction(8, gateway_reply, triggers=(720,), name="Gateway Reply"),
        QAction(9, force_not_busy, triggers=(301,), name="Force Not Busy"),
        QAction(10, max_rows_changed, triggers=(210,), name="Response Table Max Rows Changed"),
        QAction(20, lock_expiry_check, name="Lock Expiry Check"),
        QAction(21, heartbeat_check, name="Heartbeat"),
    )


__all__ = [
    "PROTOCOL_NAME",
    "ServiceSelectionError",
    "TelenetTicketClient",
    "command_message",
    "lock_message",
    "read_message",
]
