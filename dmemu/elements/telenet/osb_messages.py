"""The OSB ticketing service's XML, client side: each operation's request, and its answer parsed.

The service (Telenet's OSB) takes SOAP 1.1 style XML by ``POST`` on `SERVICE_PATH`; every
operation's element and fields are in the ``tck`` namespace (`TICKETING_NAMESPACE`):

* ``SearchTicket``: tickets of a type on a network element (optionally of an alarm, a status);
  answered at once with the tickets found.
* ``CreateTicket``, ``UpdateTicket``, ``CloseTicket``: carry the caller's ``RequestId`` (the service
  is idempotent on it) and are answered ``ACK`` with a ``TransactionId`` or ``NACK`` with a
  ``Reason``; the outcome comes later from ``GetTransactionResult``: ``PENDING``, ``COMPLETED``
  (with the ``TicketId``) or ``FAILED`` (with a ``Reason``).
* A request the service cannot read is answered HTTP 500 with a SOAP Fault.

Requests are built here from checked values (`OsbRequestError` names a missing or wrong field):
`build_request` takes any operation's fields by wire name (the Ticket Gateway builds creates,
updates and closes this way, from the fields of the request it buffered), `search_request` and
`transaction_result_request` the two requests with fixed fields;
answers are parsed by expat directly into a small tree of the elements' names and texts, refusing a
DOCTYPE, an entity declaration or an external entity reference rather than expanding anything (what
defusedxml does, without building its ElementTree parser for every answer). An answer that is a
SOAP Fault raises `OsbFaultError`; one that is not the expected XML raises `OsbAnswerError` naming
what was wrong.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, NoReturn
from xml.parsers import expat
from xml.sax.saxutils import escape

import attrs

from dmemu.protocol.errors import DmemuError

SERVICE_PATH = "/osb/TicketingService"
CONTENT_TYPE = "text/xml; charset=utf-8"
SOAP_NAMESPACE = "http://schemas.xmlsoap.org/soap/envelope/"
TICKETING_NAMESPACE = "urn:telenet:sam:ticketing:v1"

TICKET_TYPES = ("MO", "PLM")  # malfunction / outage, planned maintenance
TICKET_STATES = ("Open", "Closed")
SEVERITIES = ("Critical", "Major", "Minor", "Warning")  # the alarm severities that open tickets
ACK, NACK = "ACK", "NACK"
PENDING, COMPLETED, FAILED = "PENDING", "COMPLETED", "FAILED"

_ALLOWED_VALUES = {"TicketType": TICKET_TYPES, "Status": TICKET_STATES, "Severity": SEVERITIES}
# Characters XML 1.0 cannot carry at all, even escaped: a request holding one would be refused.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ANSWER_SHOWN = 120  # characters of an unreadable answer quoted in an error


class OsbError(DmemuError):
    """Something about an exchange with the OSB ticketing service went wrong."""


class OsbRequestError(OsbError, ValueError):
    """A request cannot be built from the values given; the message names the field."""


class OsbAnswerError(OsbError):
    """The service's answer is not the XML the operation expects; the message says what was wrong."""


class OsbFaultError(OsbAnswerError):
    """The service answered a SOAP Fault: it could not read the request (`code` ``soapenv:Client``)
    or failed itself (``soapenv:Server``); `text` is its faultstring."""

    def __init__(self, operation: str, code: str, text: str) -> None:
        super().__init__(f"{operation}: the service answered a SOAP Fault ({code}): {text}")
        self.operation = operation
        self.code = code
        self.text = text

    @property
    def client_fault(self) -> bool:
        """True when the service blames the request: sending it again changes nothing."""
        return self.code.rpartition(":")[2] == "Client"


class OsbNackError(OsbError):
    """The service refused a search (``Result`` ``NACK``); `reason` is its reason."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"{operation}: NACK: {reason}")
        self.reason = reason


@functools.lru_cache(maxsize=256)  # the few wire names come again with every request built
def snake_case(wire_name: str) -> str:
    """A field's wire name in snake_case, as requests between elements name it: ``NetworkElement`` ->
    ``network_element``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", wire_name).lower()


@attrs.frozen
class Operation:
    """One operation of the service: its name and the fields its request carries, in order."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    may_be_empty: tuple[str, ...] = ()  # required fields that may be sent empty

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required + self.optional

    @property
    def request_element(self) -> str:
        return f"{self.name}Request"

    @property
    def response_element(self) -> str:
        return f"{self.name}Response"

    def headers(self) -> dict[str, str]:
        """The HTTP headers of this operation's request."""
        return {"Content-Type": CONTENT_TYPE, "SOAPAction": f'"{self.name}"'}


SEARCH_TICKET = Operation("SearchTicket", ("TicketType", "NetworkElement"), ("AlarmId", "Status"))
CREATE_TICKET = Operation(
    "CreateTicket",
    ("RequestId", "TicketType", "AlarmId", "NetworkElement", "Severity", "PathDetails", "Description"),
    may_be_empty=("PathDetails", "Description"),
)
UPDATE_TICKET = Operation("UpdateTicket", ("RequestId", "TicketId", "Severity"), ("Description",))
CLOSE_TICKET = Operation("CloseTicket", ("RequestId", "TicketId"), ("Resolution",))
GET_TRANSACTION_RESULT = Operation("GetTransactionResult", ("TransactionId",))
OPERATIONS = {op.name: op for op in (SEARCH_TICKET, CREATE_TICKET, UPDATE_TICKET, CLOSE_TICKET, GET_TRANSACTION_RESULT)}

TICKET_FIELDS = (
    "TicketId", "TicketType", "Status", "Severity", "NetworkElement", "AlarmId", "PathDetails", "Description",
    "CreatedTime", "UpdatedTime",
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Requests


_REQUEST_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_NAMESPACE}" xmlns:tck="{TICKETING_NAMESPACE}"><soapenv:Body>'
)
_REQUEST_TAIL = "</soapenv:Body></soapenv:Envelope>"


def build_request(operation: Operation, values: Mapping[str, Any]) -> bytes:
    """The request XML of `operation` with `values` by wire name (None or absent: an optional field
    left out). Text and whole numbers are taken; anything else, a missing required field, an
    unknown field or a value out of the allowed ones raises `OsbRequestError` naming the field."""
    fields = operation.fields
    unknown = values.keys() - fields
    if unknown:
        raise OsbRequestError(f"{operation.name}: unknown field {min(unknown)!r}; its fields are {', '.join(fields)}")
    parts = []
    for name in fields:
        value = values.get(name)
        if value is None:
            if name in operation.required:
                raise OsbRequestError(f"{operation.name}: the field {name} is required")
            continue
        text = _field_text(operation, name, value)
        if "&" in text or "<" in text or ">" in text:  # most texts need no escape: its call spared
            text = escape(text)
        parts.append(f"<tck:{name}>{text}</tck:{name}>")
    element = operation.request_element
    return f"{_REQUEST_HEAD}<tck:{element}>{''.join(parts)}</tck:{element}>{_REQUEST_TAIL}".encode()


def _field_text(operation: Operation, name: str, value: Any) -> str:
    if type(value) is int:  # an alarm id may come as a number; a bool is no number here
        value = str(value)
    if not isinstance(value, str):
        raise OsbRequestError(f"{operation.name}: the field {name} is text, not {type(value).__name__} {value!r}")
    if (not value or value.isspace()) and name not in operation.may_be_empty and (name in operation.required or name in _ALLOWED_VALUES):
        raise OsbRequestError(f"{operation.name}: the field {name} is empty")
    allowed = _ALLOWED_VALUES.get(name)
    if allowed is not None and value not in allowed:
        raise OsbRequestError(f"{operation.name}: the field {name} is {value!r}, not one of {', '.join(allowed)}")
    bad = _NOT_XML.search(value)
    if bad:
        raise OsbRequestError(f"{operation.name}: the field {name} holds the character {bad.group()!r}, which XML cannot carry")
    return value


def search_request(ticket_type: str, network_element: str, alarm_id: str | int | None = None, status: str | None = None) -> bytes:
    """SearchTicketRequest: tickets of `ticket_type` on `network_element`, optionally of one alarm
    and in one status (Open or Closed; None: any)."""
    values = {"TicketType": ticket_type, "NetworkElement": network_element, "AlarmId": alarm_id, "Status": status}
    return build_request(SEARCH_TICKET, values)


def transaction_result_request(transaction_id: str) -> bytes:
    """GetTransactionResultRequest: how an acknowledged create, update or close ended."""
    return build_request(GET_TRANSACTION_RESULT, {"TransactionId": transaction_id})


# --------------------------------------------------------------------------------------------
# Answers


@attrs.frozen
class OsbAck:
    """A create, update or close was accepted; its outcome comes from GetTransactionResult."""

    transaction_id: str


@attrs.frozen
class OsbNack:
    """A create, update or close was refused (unknown ticket, ticket closed, ...)."""

    reason: str


@attrs.frozen
class FoundTicket:
    """A ticket a search found; times are the service's ISO 8601 UTC text."""

    ticket_id: str
    ticket_type: str
    status: str
    severity: str
    network_element: str
    alarm_id: str
    path_details: str
    description: str
    created_time: str
    updated_time: str

    def as_dict(self) -> dict[str, str]:
        """The ticket with snake_case keys, as a Gateway reply carries it."""
        return attrs.asdict(self)


@attrs.frozen
class TransactionResult:
    """GetTransactionResult's answer: `status` PENDING, COMPLETED (`ticket_id` set) or FAILED (`reason` set)."""

    status: str
    ticket_id: str | None = None
    reason: str | None = None


def _tag(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


_ENVELOPE = _tag(SOAP_NAMESPACE, "Envelope")
_BODY = _tag(SOAP_NAMESPACE, "Body")
_FAULT = _tag(SOAP_NAMESPACE, "Fault")
_TICKETS = _tag(TICKETING_NAMESPACE, "Tickets")
_TICKET = _tag(TICKETING_NAMESPACE, "Ticket")
# each field of a found ticket: its tag in the ticketing namespace, its name and its snake_case key
_TICKET_KEYS = tuple((_tag(TICKETING_NAMESPACE, name), name, snake_case(name)) for name in TICKET_FIELDS)
# the fields of a found ticket that hold one of a few values: name, key, the values
_TICKET_CHOICES = tuple((name, snake_case(name), allowed) for name, allowed in (("TicketType", TICKET_TYPES), ("Status", TICKET_STATES)))


def _shown(body: bytes) -> str:
    text = body[:_ANSWER_SHOWN].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > _ANSWER_SHOWN else ""))


class _Node(list["_Node"]):
    """An element of a parsed answer, the list of its child elements (as an ElementTree element is),
    with its name `tag` (``{namespace}local`` when qualified, as ElementTree names it) and its
    `text` before its first child element (None: none)."""

    __slots__ = ("tag", "text")  # set where a node is made: a list's own init is kept, being cheaper
    tag: str
    text: str | None

    def find(self, tag: str) -> _Node | None:
        """The first child element named `tag`."""
        for child in self:
            if child.tag == tag:
                return child
        return None


class _Refused(Exception):
    """The answer declares a DTD, an entity or refers to an external entity; `kind` names which."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# Each refusal raises from expat's handler, before anything declared is used: a "billion laughs"
# bomb or an external entity (a local file, a URL) is never expanded nor fetched. A DOCTYPE comes
# before any declaration, so its refusal is the one met; the other two stand behind it. The kinds
# are defusedxml's exception names, which the error message has always carried.
def _refuse_doctype(*_declaration: object) -> NoReturn:
    raise _Refused("DTDForbidden")


def _refuse_entity(*_declaration: object) -> NoReturn:
    raise _Refused("EntitiesForbidden")


def _refuse_external_reference(*_reference: object) -> NoReturn:
    raise _Refused("ExternalReferenceForbidden")


def _parse_xml(body: bytes) -> _Node:
    """The root element of `body`, parsed by expat with namespaces (what ElementTree's parser does,
    without building an element per node nor its parser object per answer). Not XML raises
    `expat.ExpatError`; a DOCTYPE, entity declaration or external entity `_Refused`."""
    parser = expat.ParserCreate(None, "}")
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity  # unparsed (NDATA) entities included
    parser.ExternalEntityRefHandler = _refuse_external_reference
    parser.buffer_text = True  # one call per run of text, entity and character references included
    parser.ordered_attributes = True  # attributes as a list, not a dict: they are not read
    document = _Node()  # holds the root element
    open_elements = [document]
    # a text longer than expat's buffer (8 KiB) comes in pieces: joined once, at the end, rather
    # than copied again with each piece; by id(node): (node, its pieces)
    pieces: dict[int, tuple[_Node, list[str]]] = {}

    def start(name: str, _attributes: list[str]) -> None:
        node = _Node()
        node.tag = "{" + name if "}" in name else name
        node.text = None
        open_elements[-1].append(node)
        open_elements.append(node)

    def end(_name: str) -> None:
        open_elements.pop()

    def text(data: str) -> None:
        node = open_elements[-1]
        if not node:  # the text after a child element is no text of its parent's
            if node.text is None:
                node.text = data
            else:
                pieces.setdefault(id(node), (node, [node.text]))[1].append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    # the whole answer at once: expat reports an error where ElementTree's feeding then closing did
    parser.Parse(body, True)
    for node, texts in pieces.values():
        node.text = "".join(texts)
    return document[0]


def _answer_element(body: bytes, operation: Operation) -> _Node:
    """The answer's element inside the SOAP Body, after checking it is `operation`'s response.

    A Fault raises `OsbFaultError`; anything else unexpected `OsbAnswerError`."""
    where = f"{operation.name}: the answer"
    if not isinstance(body, (bytes, bytearray)):
        raise TypeError(f"{operation.name}: the answer is the HTTP body as bytes, not {type(body).__name__}")
    if not body or body.isspace():  # what strip() would leave empty, without copying the body
        raise OsbAnswerError(f"{where} is empty")
    try:
        root = _parse_xml(bytes(body))
    except _Refused as refused:
        raise OsbAnswerError(f"{where} was refused: it declares a DTD or entities ({refused.kind})") from None
    except expat.ExpatError as error:
        raise OsbAnswerError(f"{where} is not XML ({error}): {_shown(body)}") from None
    if root.tag != _ENVELOPE:
        raise OsbAnswerError(f"{where} is not a SOAP Envelope but <{root.tag}>")
    soap_body = root.find(_BODY)
    if soap_body is None:
        raise OsbAnswerError(f"{where} has no SOAP Body")
    if not soap_body:
        raise OsbAnswerError(f"{where} has an empty SOAP Body")
    answer = soap_body[0]
    if answer.tag == _FAULT:
        # faultcode and faultstring are unqualified in SOAP 1.1; qualified ones are taken too.
        code = _child_text(answer, "faultcode") or "unknown"
        text = _child_text(answer, "faultstring") or "(no faultstring)"
        raise OsbFaultError(operation.name, code.strip(), text.strip())
    expected = _tag(TICKETING_NAMESPACE, operation.response_element)
    if answer.tag != expected:
        raise OsbAnswerError(f"{where} is <{answer.tag}>, not {operation.response_element} in {TICKETING_NAMESPACE}")
    return answer


def _child_text(parent: _Node, name: str) -> str | None:
    for child in parent:
        if child.tag == name or child.tag.endswith("}" + name):
            return child.text or ""
    return None


def _field(parent: _Node, name: str, where: str, *, required: bool = True) -> str | None:
    """The text of `parent`'s child `name` in the ticketing namespace."""
    child = parent.find(_tag(TICKETING_NAMESPACE, name))
    if child is None:
        if required:
            raise OsbAnswerError(f"{where} has no {name}")
        return None
    return (child.text or "").strip()


def _result(answer: _Node, operation: Operation) -> str:
    where = f"{operation.name}: the answer"
    result = _field(answer, "Result", where)
    if result not in (ACK, NACK):
        raise OsbAnswerError(f"{where}'s Result is {result!r}, not ACK or NACK")
    return result  # type: ignore[return-value]


def parse_ticket_response(body: bytes, operation: Operation) -> OsbAck | OsbNack:
    """The answer to a create, update or close (`operation`): ACK with its transaction, or NACK."""
    if operation not in (CREATE_TICKET, UPDATE_TICKET, CLOSE_TICKET):
        raise ValueError(f"{operation.name} is not answered with ACK or NACK and a transaction")
    answer = _answer_element(body, operation)
    where = f"{operation.name}: the answer"
    if _result(answer, operation) == NACK:
        return OsbNack(_field(answer, "Reason", where, required=False) or "(no reason given)")
    transaction_id = _field(answer, "TransactionId", f"{where} (ACK)")
    if not transaction_id:
        raise OsbAnswerError(f"{where} (ACK) has an empty TransactionId")
    return OsbAck(transaction_id)


def _ticket_values(ticket: _Node, here: str) -> dict[str, str]:
    """A found ticket's fields' texts, stripped, by snake_case key; a field missing raises."""
    children = {}
    for child in reversed(ticket):  # the first child of a name is the one read, as `find` takes it
        children[child.tag] = child
    values = {}
    for tag, name, key in _TICKET_KEYS:
        child = children.get(tag)
        if child is None:
            raise OsbAnswerError(f"{here} has no {name}")
        values[key] = (child.text or "").strip()
    return values


def parse_search_response(body: bytes) -> list[FoundTicket]:
    """The tickets a search found, in the service's order; a NACK raises `OsbNackError`."""
    answer = _answer_element(body, SEARCH_TICKET)
    where = "SearchTicket: the answer"
    if _result(answer, SEARCH_TICKET) == NACK:
        raise OsbNackError(SEARCH_TICKET.name, _field(answer, "Reason", where, required=False) or "(no reason given)")
    tickets = answer.find(_TICKETS)
    if tickets is None:
        raise OsbAnswerError(f"{where} has no Tickets")
    found = []
    for position, ticket in enumerate(tickets, start=1):
        if ticket.tag != _TICKET:
            raise OsbAnswerError(f"{where}: Tickets holds <{ticket.tag}> at position {position}, not a Ticket")
        here = f"{where}: Ticket {position}"
        values = _ticket_values(ticket, here)
        if not values["ticket_id"]:
            raise OsbAnswerError(f"{here} has an empty TicketId")
        for name, key, allowed in _TICKET_CHOICES:
            if values[key] not in allowed:
                raise OsbAnswerError(f"{here} ({values['ticket_id']}): {name} is {values[key]!r}, not one of {', '.join(allowed)}")
        found.append(FoundTicket(**values))  # type: ignore[arg-type]
    return found


def parse_transaction_result(body: bytes) -> TransactionResult:
    """GetTransactionResult's answer."""
    answer = _answer_element(body, GET_TRANSACTION_RESULT)
    where = "GetTransactionResult: the answer"
    status = _field(answer, "Status", where)
    if status == PENDING:
        return TransactionResult(PENDING)
    if status == COMPLETED:
        ticket_id = _field(answer, "TicketId", f"{where} (COMPLETED)")
        if not ticket_id:
            raise OsbAnswerError(f"{where} (COMPLETED) has an empty TicketId")
        return TransactionResult(COMPLETED, ticket_id=ticket_id)
    if status == FAILED:
        return TransactionResult(FAILED, reason=_field(answer, "Reason", where, required=False) or "(no reason given)")
    raise OsbAnswerError(f"{where}'s Status is {status!r}, not one of {PENDING}, {COMPLETED}, {FAILED}")


__all__ = [
    "ACK",
    "CLOSE_TICKET",
    "COMPLETED",
    "CONTENT_TYPE",
    "CREATE_TICKET",
    "FAILED",
    "GET_TRANSACTION_RESULT",
    "NACK",
    "OPERATIONS",
    "PENDING",
    "SEARCH_TICKET",
    "SERVICE_PATH",
    "SEVERITIES",
    "SOAP_NAMESPACE",
    "TICKETING_NAMESPACE",
    "TICKET_STATES",
    "TICKET_TYPES",
    "UPDATE_TICKET",
    "FoundTicket",
    "Operation",
    "OsbAck",
    "OsbAnswerError",
    "OsbError",
    "OsbFaultError",
    "OsbNack",
    "OsbNackError",
    "OsbRequestError",
    "TransactionResult",
    "build_request",
    "parse_search_response",
    "parse_ticket_response",
    "parse_transaction_result",
    "search_request",
    "snake_case",
    "transaction_result_request",
]
