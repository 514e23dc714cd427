"""TM Forum Service Problem Management: the customer-specific branch of the Service Problem
Management connector, with custom attributes; DataMiner Ticketing tickets synchronised with a
ServiceNow-backed standard TMF656 v4 API.

What the connector's help page says, and where it lives here (the synchronisation itself is
the shared core, `service_problem_sync`, whose docstring has the field ownership table):

* **HTTP connection** (IP address/host, IP port 443, bus address ``BypassProxy``); *API Base
  Path* is the standard ``/tmf-api/serviceProblemManagement/v4``; basic authentication with
  *Username* and the write-only *Password*. Nothing goes on the network until the three are
  filled in.
* **Ticket Synchronization State** and **Ticket Synchronization Frequency** on the
  Configuration page; the managed tickets and the synchronisation status on the General page.
* **DataMiner Ticketing licence**: without it the element says so and synchronises nothing.

Changes are polled with the standard v4 filter ``lastUpdate.gte=<time>`` (``>=``, records of the
watermark's second are de-duplicated by id). Problems ServiceNow users create are imported as
tickets (*Import Upstream Problems*, on by default in this branch).

**Custom attributes** come from a customer profile (`CustomerProfile`): each names the attribute
as it travels upstream, its type (string, number, enum with values, date), where it travels (a
``characteristic`` entry ``{name, value, valueType}``, or a top-level extension attribute
declared by an ``@type``), the DMS ticket field it maps to and who owns it when both sides
changed it. Each becomes a ticket field and a column of the managed tickets table, is checked
both ways (a bad upstream value is logged and shown on that ticket's row, and the ticket keeps
its last good value), and a profile changed across a restart follows DMS Ticketing's ticket
type compatibility rules (an incompatible change is refused and the element says so).
`ORBITAL_NETWORKS` is the example profile of a made-up customer (``profiles/orbital_networks.json``);
``tm_forum_protocol(CustomerProfile.load(path))`` builds the connector for another one (build
it before opening a DMS that holds such elements, so the saved elements find their protocol).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from dmemu.protocol import DmemuError, HttpConnection, Protocol

from . import service_problem_sync as sync

STANDARD_BASE_PATH = "/tmf-api/serviceProblemManagement/v4"
PROFILES_FOLDER = Path(__file__).with_name("profiles")
FIRST_CUSTOM_COLUMN = 1050
KINDS = ("string", "number", "enum", "date")
TRAVELS = ("characteristic", "extension")
OWNERS = ("servicenow", "dataminer")
_STANDARD_FIELDS = frozenset(field.name for field in sync.ticket_type("x").fields)
_ATTRIBUTE_KEYS = frozenset({"name", "type", "values", "travels", "at_type", "field", "owner"})


class CustomerProfileError(DmemuError, ValueError):
    """A customer profile that cannot be used; the message names the attribute and the reason."""


@attrs.frozen
class CustomerProfile:
    """A customer's custom attributes, for the TM Forum branch."""

    customer: str
    attributes: tuple[sync.CustomAttribute, ...]
    ticket_type: str = "TM Forum Service Problem"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "the profile") -> CustomerProfile:
        """A checked profile; `CustomerProfileError` names the first attribute that is wrong."""
        if not isinstance(data, Mapping):
            raise CustomerProfileError(f"{source}: a profile is a JSON object, not {type(data).__name__}")
        unknown = sorted(set(data) - {"customer", "ticket_type", "attributes"})
        if unknown:
            raise CustomerProfileError(f"{source}: unknown keys {unknown}; a profile has customer, ticket_type and attributes")
        customer = data.get("customer")
        if not isinstance(customer, str) or not customer.strip():
            raise CustomerProfileError(f"{source}: 'customer' must be a non-empty name")
        ticket_type = data.get("ticket_type", "TM Forum Service Problem")
        if not isinstance(ticket_type, str) or not ticket_type.strip():
            raise CustomerProfileError(f"{source}: 'ticket_type' must be a non-empty name")
        raw = data.get("attributes", [])
        if not isinstance(raw, list):
            raise CustomerProfileError(f"{source}: 'attributes' must be a list")
        attributes: list[sync.CustomAttribute] = []
        for position, entry in enumerate(raw):
            attributes.append(_attribute(entry, position, FIRST_CUSTOM_COLUMN + position, attributes, source))
        return cls(customer.strip(), tuple(attributes), ticket_type.strip())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CustomerProfile:
        """A profile from a JSON file; a file that cannot be read or parsed names itself."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise CustomerProfileError(f"customer profile {path}: {error.strerror or error}") from None
        try:
            data = json.loads(text)
        except ValueError as error:
            raise CustomerProfileError(f"customer profile {path}: not JSON ({error})") from None
        return cls.from_dict(data, source=f"customer profile {path}")


def _attribute(entry: Any, position: int, column_id: int, earlier: list[sync.CustomAttribute], source: str) -> sync.CustomAttribute:
    label = f"attribute {position + 1}"
    if not isinstance(entry, Mapping):
        raise CustomerProfileError(f"{source}: {label} must be an object")
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise CustomerProfileError(f"{source}: {label}: 'name' {name!r} must be an identifier (letters, digits, _)")
    label = f"attribute {name!r}"

    def refuse(why: str) -> CustomerProfileError:
        return CustomerProfileError(f"{source}: {label}: {why}")

    unknown = sorted(set(entry) - _ATTRIBUTE_KEYS)
    if unknown:
        raise refuse(f"unknown keys {unknown}; an attribute has {', '.join(sorted(_ATTRIBUTE_KEYS))}")
    kind = entry.get("type")
    if kind not in KINDS:
        raise refuse(f"type {kind!r} is not one of {', '.join(KINDS)}")
    values = entry.get("values", [])
    if kind == "enum":
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values) or len(set(values)) != len(values):
            raise refuse("an enum needs 'values', a list of distinct non-empty texts")
    elif "values" in entry:
        raise refuse(f"'values' belong to an enum, not to a {kind}")
    travels = entry.get("travels", "characteristic")
    if travels not in TRAVELS:
        raise refuse(f"travels {travels!r} is not one of {', '.join(TRAVELS)}")
    at_type = entry.get("at_type")
    if travels == "extension" and (not isinstance(at_type, str) or not at_type):
        raise refuse("an extension attribute needs 'at_type', the @type that declares it")
    if travels == "characteristic" and at_type is not None:
        raise refuse("'at_type' belongs to an extension attribute")
    field = entry.get("field", name)
    if not isinstance(field, str) or not field.strip():
        raise refuse(f"field {field!r} must be a non-empty ticket field name")
    if field in _STANDARD_FIELDS:
        raise refuse(f"field {field!r} is a standard field of the ticket type")
    owner = entry.get("owner", "servicenow")
    if owner not in OWNERS:
        raise refuse(f"owner {owner!r} is not one of {', '.join(OWNERS)}")
    for other in earlier:
        if other.name == name:
            raise refuse("the name is used twice")
        if other.field == field:
            raise refuse(f"field {field!r} is used by attribute {other.name!r} too")
    at_types = {other.at_type for other in earlier if other.at_type}
    if at_type and at_types and at_type not in at_types:
        raise refuse(f"at_type {at_type!r}: the extension attributes of a profile share one @type ({sorted(at_types)[0]!r})")
    return sync.CustomAttribute(name, kind, field, column_id, travels, tuple(values), at_type, owner)


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")


def tm_forum_protocol(profile: CustomerProfile, *, qualname: str | None = None) -> type[Protocol]:
    """The connector for one customer's profile: its custom attributes as ticket fields and columns.

    A protocol of the same customer built again (a changed profile, a new process) has the same
    ``module:QualifiedName`` (`qualname`, by default one from the customer's name), so saved
    elements find it."""
    flavour = sync.Flavour(
        name=f"TM Forum Service Problem Management ({profile.customer})",
        ticket_type=profile.ticket_type,
        default_base_path=STANDARD_BASE_PATH,
        servicenow_query=False,
        import_default=sync.ENABLED,  # this branch imports the problems ServiceNow users create
        custom=profile.attributes,
    )
    qualname = qualname or f"TmForumServiceProblemManagement_{_slug(profile.customer)}"
    return type(
        qualname,
        (Protocol,),
        {
            "__module__": __name__,
            "__qualname__": qualname,
            "__doc__": f"TM Forum Service Problem Management for {profile.customer}.",
            "name": "TM Forum Service Problem Management",
            "version": "1.0.0.1",
            "description": f"Synchronizes tickets between DataMiner Ticketing and SNOW (TMF656 v4), with {profile.customer}'s custom attributes.",
            "connection": HttpConnection(default_port=443),
            "pages": sync.PAGES,
            "parameters": sync.parameters(flavour),
            "tables": sync.tables(flavour),
            "timers": sync.TIMERS,
            "qactions": sync.qactions(flavour),
        },
    )


ORBITAL_NETWORKS = CustomerProfile.load(PROFILES_FOLDER / "orbital_networks.json")
"""The example profile of a made-up customer, Orbital Networks."""

TmForumServiceProblemManagement = tm_forum_protocol(ORBITAL_NETWORKS, qualname="TmForumServiceProblemManagement")
"""The connector with the example profile (`ORBITAL_NETWORKS`)."""

__all__ = [
    "ORBITAL_NETWORKS",
    "STANDARD_BASE_PATH",
    "CustomerProfile",
    "CustomerProfileError",
    "TmForumServiceProblemManagement",
    "tm_forum_protocol",
]
