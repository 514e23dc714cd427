"""The Telenet OSB ticketing service: SOAP-style operations on MO and PLM tickets, without HTTP.

Five operations (the contract of issue 13, /work/notes/telenet_contract.md): search tickets,
create, update and close one (answered ACK with a TransactionId or NACK with a Reason), and
get the asynchronous result of a create, update or close. A transaction takes effect when the
service processes it, `processing_delay` seconds of the simulator's clock after its ACK, so a
ticket closed in between makes an update or close FAILED. Processing is lazy: whatever reads or
changes the tickets first processes every transaction then due, in the order they were ACKed,
so a hand-moved clock decides what is done.

A RequestId is idempotent: the same request again gets the same TransactionId and changes
nothing; the same RequestId on another request is NACKed.

Bodies are parsed with defusedxml: a DOCTYPE (and so any entity) is refused, never expanded.
What the service cannot read is a `SoapFault` naming the culprit. The HTTP side is `osb_server`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import attrs
import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from .clock import iso_utc

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
TICKETING_NS = "urn:telenet:sam:ticketing:v1"
ENDPOINT = "/osb/TicketingService"
CONTENT_TYPE = "text/xml; charset=utf-8"

TICKET_TYPES = ("MO", "PLM")
STATUSES = ("Open", "Closed")
SEVERITIES = ("Critical", "Major", "Minor", "Warning")
ACK, NACK = "ACK", "NACK"
PENDING, COMPLETED, FAILED = "PENDING", "COMPLETED", "FAILED"

SEARCH = "SearchTicketRequest"
CREATE = "CreateTicketRequest"
UPDATE = "UpdateTicketRequest"
CLOSE = "CloseTicketRequest"
RESULT = "GetTransactionResultRequest"
OPERATIONS = (SEARCH, CREATE, UPDATE, CLOSE, RESULT)
WRITE_OPERATIONS = (CREATE, UPDATE, CLOSE)  # ACKed, then processed: each has a transaction

ID_WIDTH = 6  # MO-000001

_IDENTIFIER = "identifier"
_TEXT = "text"


@attrs.frozen
class _Field:
    # _IDENTIFIER (text that must not be empty), _TEXT (free, may be empty) or the values it takes.
    # An optional identifier or value given empty counts as not given (a search's "any").
    kind: tuple[str, ...] | str
    required: bool = True


_REQUEST_ID = _Field(_IDENTIFIER)
_TICKET_ID = _Field(_IDENTIFIER)
FIELDS: Mapping[str, Mapping[str, _Field]] = {
    SEARCH: {
        "TicketType": _Field(TICKET_TYPES),
        "NetworkElement": _Field(_IDENTIFIER),
        "AlarmId": _Field(_IDENTIFIER, required=False),
        "Status": _Field(STATUSES, required=False),
    },
    CREATE: {
        "RequestId": _REQUEST_ID,
        "TicketType": _Field(TICKET_TYPES),
        "AlarmId": _Field(_IDENTIFIER),
        "NetworkElement": _Field(_IDENTIFIER),
        "Severity": _Field(SEVERITIES),
        "PathDetails": _Field(_TEXT),
        "Description": _Field(_TEXT),
    },
    UPDATE: {
        "RequestId": _REQUEST_ID,
        "TicketId": _TICKET_ID,
        "Severity": _Field(SEVERITIES),
        "Description": _Field(_TEXT, required=False),
    },
    CLOSE: {"RequestId": _REQUEST_ID, "TicketId": _TICKET_ID, "Resolution": _Field(_TEXT, required=False)},
    RESULT: {"TransactionId": _Field(_IDENTIFIER)},
}


class SoapFault(Exception):
    """A request the service cannot read (or, with ``soapenv:Server``, a failure of its own):
    answered with `status` and a SOAP Fault whose faultstring is the message."""

    def __init__(self, message: str, *, status: int = 500, code: str = "soapenv:Client", operation: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.operation = operation  # when the body named a known one

    def xml(self) -> bytes:
        return _envelope(
            f"<soapenv:Fault><faultcode>{escape(self.code)}</faultcode>"
            f"<faultstring>{escape(self.message)}</faultstring></soapenv:Fault>"
        )


@attrs.frozen
class OsbRequest:
    """A request the service read: its operation's name and its fields by wire name."""

    operation: str
    fields: Mapping[str, str]  # the wire names of the fields given, with their text


def parse_request(body: bytes) -> OsbRequest:
    """The operation a SOAP envelope asks for; SoapFault naming what is wrong otherwise."""
    if not body.strip():
        raise SoapFault("the body is empty: a SOAP envelope is expected")
    try:
        root = SafeElementTree.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as error:  # before any entity is declared, let alone expanded
        raise SoapFault(f"a DOCTYPE or entity declaration is not allowed ({type(error).__name__})") from None
    except ParseError as error:
        raise SoapFault(f"the body is not XML: {error}") from None
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        raise SoapFault(f"the root element is {root.tag}, not a SOAP Envelope in {SOAP_NS}")
    bodies = [child for child in root if child.tag == f"{{{SOAP_NS}}}Body"]
    if len(bodies) != 1:
        raise SoapFault(f"the Envelope holds {len(bodies)} Body elements, not one")
    operations = list(bodies[0])
    if len(operations) != 1:
        raise SoapFault(f"the Body holds {len(operations)} elements; one operation is expected")
    element = operations[0]
    operation = _local_name(element, "operation")
    if operation not in FIELDS:
        raise SoapFault(f"unknown operation {operation!r}; the operations are {', '.join(OPERATIONS)}")
    try:
        return OsbRequest(operation, _fields(operation, element))
    except SoapFault as error:
        error.operation = operation
        raise


def _local_name(element: Element, what: str) -> str:
    namespace, _, name = element.tag[1:].partition("}") if element.tag.startswith("{") else ("", "", element.tag)
    if namespace != TICKETING_NS:
        raise SoapFault(f"{what} {name!r} is in namespace {namespace or 'none'!r}, not {TICKETING_NS}")
    return name


def _fields(operation: str, element: Element) -> dict[str, str]:
    allowed = FIELDS[operation]
    found: dict[str, str] = {}
    seen: set[str] = set()
    for child in element:
        name = _local_name(child, f"{operation} field")
        field = allowed.get(name)
        if field is None:
            raise SoapFault(f"{operation} has no field {name!r}; its fields are {', '.join(allowed)}")
        if name in seen:
            raise SoapFault(f"{operation}: {name} is given twice")
        seen.add(name)
        if len(child):
            raise SoapFault(f"{operation}: {name} holds elements; it takes text")
        text = child.text or ""
        if field.kind != _TEXT:
            text = text.strip()
            if not text:
                if not field.required:
                    continue
                raise SoapFault(f"{operation}: {name} is empty")
            if field.kind != _IDENTIFIER and text not in field.kind:
                raise SoapFault(f"{operation}: {name} {text!r} is not one of {', '.join(field.kind)}")
        found[name] = text
    missing = [name for name, field in allowed.items() if field.required and name not in found]
    if missing:
        raise SoapFault(f"{operation}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    return found


# -- answers -----------------------------------------------------------------------------------


def _envelope(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:tck="{TICKETING_NS}">'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    ).encode()


def _elements(fields: Iterable[tuple[str, str]]) -> str:
    return "".join(f"<tck:{name}>{escape(value)}</tck:{name}>" for name, value in fields)


def response_name(operation: str) -> str:
    """SearchTicketRequest -> SearchTicketResponse."""
    return operation.removesuffix("Request") + "Response"


def _response(operation: str, content: str) -> bytes:
    name = response_name(operation)
    return _envelope(f"<tck:{name}>{content}</tck:{name}>")


@attrs.frozen
class OsbTicket:
    """A ticket the service keeps: its id, type, state, severity, what it is about and when it
    was created and last changed (ISO 8601 UTC)."""

    ticket_id: str
    ticket_type: str
    status: str
    severity: str
    network_element: str
    alarm_id: str
    path_details: str
    description: str
    created_time: float  # epoch seconds of the simulator's clock
    updated_time: float
    resolution: str = ""  # what the close said; not part of the search answer

    def xml(self) -> str:
        return "<tck:Ticket>" + _elements(
            [
                ("TicketId", self.ticket_id),
                ("TicketType", self.ticket_type),
                ("Status", self.status),
                ("Severity", self.severity),
                ("NetworkElement", self.network_element),
                ("AlarmId", self.alarm_id),
                ("PathDetails", self.path_details),
                ("Description", self.description),
                ("CreatedTime", iso_utc(self.created_time)),
                ("UpdatedTime", iso_utc(self.updated_time)),
            ]
        ) + "</tck:Ticket>"

    @property
    def order(self) -> tuple[str, int]:
        """Ticket ids in number order, also past 999999."""
        kind, _, number = self.ticket_id.partition("-")
        return kind, int(number)


@attrs.frozen
class OsbTransaction:
    """An acknowledged create, update or close: the caller's RequestId it answers, and how it
    ends (PENDING until its processing delay passed, then COMPLETED or FAILED)."""

    transaction_id: str
    request_id: str
    operation: str  # one of WRITE_OPERATIONS
    fields: Mapping[str, str] = attrs.field(hash=False)  # the request's, RequestId included
    accepted: float  # when it was ACKed, on the simulator's clock
    due: float  # when the service processes it
    status: str = PENDING
    ticket_id: str = ""  # the ticket it made or changed, once COMPLETED
    reason: str = ""  # why it FAILED
    failure: str | None = None  # a simulated processing failure ordered at its ACK (a "fail" fault)


def _checked(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return value


class OsbTickets:
    """The tickets and transactions of the service, on the simulator's clock; thread-safe."""

    def __init__(self, clock: Callable[[], float], processing_delay: float = 0.0) -> None:
        self.clock = clock
        self.processing_delay = processing_delay
        self._tickets: dict[str, OsbTicket] = {}
        # (ticket type, network element) -> ticket ids, as a search names both: it reads only those
        self._by_element: dict[tuple[str, str], list[str]] = {}
        self._counters = dict.fromkeys(TICKET_TYPES, 0)
        self._transactions: dict[str, OsbTransaction] = {}
        self._by_request_id: dict[str, OsbTransaction] = {}
        self._pending: list[str] = []  # transaction ids in ACK order
        self._lock = threading.Lock()

    @property
    def processing_delay(self) -> float:
        return self._processing_delay

    @processing_delay.setter
    def processing_delay(self, seconds: float) -> None:
        if type(seconds) not in (int, float) or not 0 <= seconds < float("inf"):
            raise ValueError(f"processing_delay {seconds!r} is not a number of seconds from 0")
        self._processing_delay = float(seconds)

    # -- for tests and harnesses ---------------------------------------------------------------

    def tickets(self) -> list[OsbTicket]:
        """Every ticket, in id order, once the transactions due by now are processed."""
        with self._lock:
            self._catch_up()
            return sorted(self._tickets.values(), key=lambda ticket: ticket.order)

    def transactions(self) -> list[OsbTransaction]:
        """Every transaction, in ACK order, once those due by now are processed."""
        with self._lock:
            self._catch_up()
            return list(self._transactions.values())

    def add_ticket(
        self,
        ticket_type: str,
        network_element: str,
        *,
        alarm_id: str = "",
        severity: str = "Major",
        status: str = "Open",
        path_details: str = "",
        description: str = "",
        resolution: str = "",
    ) -> OsbTicket:
        """A ticket that was there before (created now, numbered as the service numbers them)."""
        _checked("ticket_type", ticket_type, TICKET_TYPES)
        _checked("severity", severity, SEVERITIES)
        _checked("status", status, STATUSES)
        with self._lock:
            now = self.clock()
            ticket = OsbTicket(
                self._next_ticket_id(ticket_type), ticket_type, status, severity, network_element, alarm_id,
                path_details, description, now, now, resolution,
            )  # fmt: skip
            self._add(ticket)
            return ticket

    # -- the operations --------------------------------------------------------------------------

    def answer(self, request: OsbRequest, *, nack: str | None = None, failure: str | None = None) -> bytes:
        """The answer envelope of a request. `nack` refuses it with that reason (a simulated
        refusal, taking no effect); `failure` ACKs a create, update or close whose processing
        then FAILS with that reason."""
        operation, fields = request.operation, request.fields
        if nack is not None and operation != RESULT:
            return _response(operation, _elements([("Result", NACK), ("Reason", nack)]))
        with self._lock:
            self._catch_up()
            if operation == SEARCH:
                return _response(operation, _elements([("Result", ACK)]) + f"<tck:Tickets>{''.join(t.xml() for t in self._search(fields))}</tck:Tickets>")
            if operation == RESULT:
                return _response(operation, self._result(fields["TransactionId"]))
            transaction_id, refusal = self._submit(operation, fields, failure)
        if refusal is not None:
            return _response(operation, _elements([("Result", NACK), ("Reason", refusal)]))
        return _response(operation, _elements([("Result", ACK), ("TransactionId", transaction_id)]))

    def _search(self, fields: Mapping[str, str]) -> list[OsbTicket]:
        alarm_id, status = fields.get("AlarmId"), fields.get("Status")
        ticket_ids = self._by_element.get((fields["TicketType"], fields["NetworkElement"]), [])
        found = [
            ticket
            for ticket in map(self._tickets.__getitem__, ticket_ids)
            if (alarm_id is None or ticket.alarm_id == alarm_id) and (status is None or ticket.status == status)
        ]
        return sorted(found, key=lambda ticket: ticket.order)

    def _result(self, transaction_id: str) -> str:
        transaction = self._transactions.get(transaction_id)
        if transaction is None:
            return _elements([("Status", FAILED), ("Reason", f"unknown TransactionId {transaction_id!r}")])
        if transaction.status == COMPLETED:
            return _elements([("Status", COMPLETED), ("TicketId", transaction.ticket_id)])
        if transaction.status == FAILED:
            return _elements([("Status", FAILED), ("Reason", transaction.reason)])
        return _elements([("Status", PENDING)])

    def _submit(self, operation: str, fields: Mapping[str, str], failure: str | None) -> tuple[str, str | None]:
        """(TransactionId, None) for an ACK, ("", reason) for a NACK."""
        request_id = fields["RequestId"]
        earlier = self._by_request_id.get(request_id)
        if earlier is not None:
            if earlier.operation == operation and earlier.fields == fields:
                return earlier.transaction_id, None  # the same request again: nothing new
            return "", f"RequestId {request_id!r} was already used for another request ({earlier.operation}, {earlier.transaction_id})"
        if operation != CREATE:
            ticket = self._tickets.get(fields["TicketId"])
            if ticket is None:
                return "", f"unknown ticket {fields['TicketId']!r}"
            if ticket.status == "Closed":
                return "", f"ticket {ticket.ticket_id} is closed"
        now = self.clock()
        transaction = OsbTransaction(
            f"TX-{len(self._transactions) + 1:0{ID_WIDTH}d}", request_id, operation, dict(fields), now, now + self.processing_delay,
            failure=failure,
        )  # fmt: skip
        self._transactions[transaction.transaction_id] = self._by_request_id[request_id] = transaction
        self._pending.append(transaction.transaction_id)
        return transaction.transaction_id, None

    # -- processing ----------------------------------------------------------------------------

    def _catch_up(self) -> None:
        """Process every pending transaction due by now, in ACK order (the caller holds the lock)."""
        if not self._pending:
            return
        now = self.clock()
        waiting = []
        for transaction_id in self._pending:
            transaction = self._transactions[transaction_id]
            if transaction.due > now:
                waiting.append(transaction_id)
                continue
            done = self._process(transaction)
            self._transactions[transaction_id] = self._by_request_id[transaction.request_id] = done
        self._pending = waiting

    def _process(self, transaction: OsbTransaction) -> OsbTransaction:
        fields, when = transaction.fields, transaction.due
        if transaction.failure is not None:
            return attrs.evolve(transaction, status=FAILED, reason=transaction.failure)
        if transaction.operation == CREATE:
            ticket_type = fields["TicketType"]
            ticket = OsbTicket(
                self._next_ticket_id(ticket_type), ticket_type, "Open", fields["Severity"], fields["NetworkElement"],
                fields["AlarmId"], fields["PathDetails"], fields["Description"], when, when,
            )  # fmt: skip
            self._add(ticket)
            return attrs.evolve(transaction, status=COMPLETED, ticket_id=ticket.ticket_id)
        ticket = self._tickets[fields["TicketId"]]  # ACKed for a known ticket; tickets are never removed
        if ticket.status == "Closed":
            return attrs.evolve(transaction, status=FAILED, reason=f"ticket {ticket.ticket_id} was closed meanwhile")
        if transaction.operation == UPDATE:
            changed = attrs.evolve(ticket, severity=fields["Severity"], description=fields.get("Description", ticket.description), updated_time=when)
        else:
            changed = attrs.evolve(ticket, status="Closed", resolution=fields.get("Resolution", ""), updated_time=when)
        self._tickets[ticket.ticket_id] = changed
        return attrs.evolve(transaction, status=COMPLETED, ticket_id=ticket.ticket_id)

    def _add(self, ticket: OsbTicket) -> None:
        self._tickets[ticket.ticket_id] = ticket
        self._by_element.setdefault((ticket.ticket_type, ticket.network_element), []).append(ticket.ticket_id)

    def _next_ticket_id(self, ticket_type: str) -> str:
        self._counters[ticket_type] += 1
        return f"{ticket_type}-{self._counters[ticket_type]:0{ID_WIDTH}d}"
