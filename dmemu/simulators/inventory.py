"""A satellite operator's inventory, generated on demand: TMF638 services and carriers, TMF639 resources.

The model, briefly:

* **Kinds and ids.** Customer-facing services are ``SVC-0000123`` (``"@type": "CustomerFacingService"``),
  carriers ``CAR-0000042`` (services with ``"@type": "element"``), resources ``RES-0000777``. Resource
  numbers interleave twelve types (Satellite, Transponder, BandwidthSegment, Antenna, Amplifier,
  Modem, Slot, Card, Port, LogicalPort, Circuit, Multicast) by weight, in a seeded pattern that
  repeats every 100 numbers and lists every type once first (so a handful of resources still has
  a satellite); the number alone names the type. Within a kind an item is a *slot*: its position
  in the kind, which gives its number.
* **Content.** An item is a pure function of the seed, its kind and number, and its variant (the
  original, its n-th change, or a duplicate copy): random words hashed from ``f"{seed}:{kind}:{number}"``
  draw it (`_words`, `_Stream`), so item i never needs items 0..i-1 and nothing is held per item
  until time changes it. Daily batches draw from ``random.Random`` streams of their own.
  Cross-references are arithmetic (a Port sits in Card ``k % cards``, a Transponder on Satellite
  ``k % satellites``) and point at items of the initial inventory (they may dangle after removals,
  as real ones do).
* **Order.** A collection lists its kinds in a fixed order (TMF638: services, then carriers;
  TMF639: the resource types in hierarchy order), each by slot; so the sort key is (kind, slot,
  copy) and is unique even for duplicates. Arrivals take new slots at the end of their kind.
* **Duplicates and empty ids.** ``duplicate_ids`` and ``empty_ids`` extra items *per collection*
  repeat the id of (or have ``"id": ""`` next to) seeded items of the initial inventory and are
  listed right after them (copy 1, 2, ...). They never change or disappear. ``get`` returns the
  first item with an id: the original while it lives, else its first duplicate.
* **Time.** Base items got their ``lastUpdate`` during the year before ``start``, in a seeded order
  (an affine permutation of the slots, so "updated since t" is found without a scan). From
  ``start`` on, each simulated day d brings seeded batches per kind, each event at a seeded second
  of the day: churn (``churn_per_day`` of the live items change: state and description change, the
  revision goes up), arrivals (new items at the end of the kind) and removals. Batches are applied
  lazily, up to ``now()``, when ``Inventory.services`` or ``Inventory.resources`` is read; a clock
  that goes back replays from the start. Per-slot arrays (last change, revision, live flags) exist
  only once a switch is on. ``updated_since`` regenerates the churn and arrival batches of the days
  in its window (they depend only on the day and the counts recorded for it), so its cost grows
  with the items changed, not with the collection. Each applied event that changed something
  leaves its slot in a log (8 bytes an event), so a filtered view (`Collection.where`) can be
  brought up to date by judging those slots again (`Collection.marks`).
* **JSON text.** ``Collection.json_slice`` gives items as the text ``json.dumps(item,
  separators=(",", ":"))`` would give, written without building the dicts: what a server sends
  for a page (see `_Content`).
* **hrefs.** ``Inventory(..., href_base="http://host:port")`` prefixes every href (items and the
  references inside them) with the server's base URL, making them absolute URIs; the default ""
  gives paths such as ``/tmf-api/serviceInventory/v4/service/SVC-0000001``. A server that serves the
  same items at another path (SES's) takes ``collection.with_item_href(url)``: the items' own hrefs
  move there, the references inside them stay.
* **Extension.** ``lastUpdate`` (ISO 8601 UTC, second precision, ``Z``) is a vendor extension:
  TMF638/639 v4 have no last-update field, SES adds its own and servers filter on it.
"""

from __future__ import annotations

import abc
import bisect
import copy
import datetime as dt
import functools
import hashlib
import heapq
import itertools
import json
import math
import random
import re
import struct
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any, NamedTuple, Protocol

import attrs

__all__ = ["DAY", "DEFAULT_START", "RESOURCE_PATH", "RESOURCE_TYPES", "SERVICE_PATH", "Collection", "Inventory", "InventorySpec", "iso_utc"]

DAY = 86_400

_ISO_DATES: dict[int, str] = {}  # day number -> "YYYY-MM-DDT": generated items fall on a few thousand days
_CLOCK_TIMES: tuple[str, ...] = ()  # "HH:MM:SSZ" for each second of a day, made with the first date


def iso_utc(epoch: float) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second: how the TMF APIs here write times.

    Items carry several each and pages carry thousands, so both halves come from tables."""
    day, second = divmod(int(epoch), DAY)
    date = _ISO_DATES.get(day)
    if date is None:
        date = _iso_date(day)
    return date + _CLOCK_TIMES[second]


def _iso_date(day: int) -> str:
    global _CLOCK_TIMES
    if not _CLOCK_TIMES:
        minutes = [f"{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60)]
        _CLOCK_TIMES = tuple(minute + f"{second:02d}Z" for minute in minutes for second in range(60))
    if len(_ISO_DATES) >= 20_000:
        _ISO_DATES.clear()
    date = _ISO_DATES[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * DAY))
    return date


YEAR = 365 * DAY
DEFAULT_START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()

SERVICE_PATH = "/tmf-api/serviceInventory/v4/service"
RESOURCE_PATH = "/tmf-api/resourceInventoryManagement/v4/resource"
_ORGANIZATION_PATH = "/tmf-api/party/v4/organization"
_SITE_PATH = "/tmf-api/geographicSiteManagement/v4/geographicSite"
_SERVICE_SPECIFICATION_PATH = "/tmf-api/serviceCatalogManagement/v4/serviceSpecification"
_RESOURCE_SPECIFICATION_PATH = "/tmf-api/resourceCatalog/v4/resourceSpecification"

Item = dict[str, Any]

def _whole(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not int:  # a bool is an int to Python, and 2.5 items are nonsense
        raise TypeError(f"InventorySpec.{attribute.name} must be a whole number, not {value!r}")


def _real(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise TypeError(f"InventorySpec.{attribute.name} must be a finite number, not {value!r}")


_count = attrs.validators.and_(_whole, attrs.validators.ge(0))
_fraction = attrs.validators.and_(_real, attrs.validators.ge(0.0), attrs.validators.le(1.0))


@attrs.frozen
class InventorySpec:
    """What to generate: sizes, seed and the realism switches (all off by default)."""

    services: int = attrs.field(default=200, validator=_count)  # customer-facing services (TMF638)
    carriers: int = attrs.field(default=50, validator=_count)  # services with "@type": "element" (TMF638)
    resources: int = attrs.field(default=300, validator=_count)  # TMF639 resources
    seed: int = attrs.field(default=1, validator=_whole)
    duplicate_ids: int = attrs.field(default=0, validator=_count)  # extra items per collection repeating an id
    empty_ids: int = attrs.field(default=0, validator=_count)  # extra items per collection with "id": ""
    churn_per_day: float = attrs.field(default=0.0, validator=_fraction)  # fraction of live items changed a day
    arrivals_per_day: float = attrs.field(default=0.0, validator=_fraction)  # new items a day, as a fraction
    removals_per_day: float = attrs.field(default=0.0, validator=_fraction)  # items gone a day, as a fraction
    start: float = attrs.field(default=DEFAULT_START, validator=_real)  # simulated time 0 (epoch seconds; a fraction of a second is dropped)


# --------------------------------------------------------------------------------------------
# Small helpers



_blake2b = hashlib.blake2b
_BLOCK = struct.Struct("<8Q")  # a BLAKE2b-512 digest as eight 64-bit words
_TWO_TO_MINUS_53 = 2.0**-53


def _words(key: bytes, block: int = 0) -> tuple[int, ...]:
    """Eight random 64-bit words, the same for the same key and block: the primitive under `_Stream`.

    An item that draws a fixed set of numbers takes them straight from here (``word % n`` is
    uniform to within n / 2**64); that is the cheapest way to draw in Python.
    """
    return _BLOCK.unpack(_blake2b(b"%d|%b" % (block, key) if block else key).digest())


def _later_blocks(key: bytes) -> Iterator[int]:
    for block in itertools.count(1):
        yield from _words(key, block)


class _Stream:
    """An item's own random numbers: 64-bit words hashed from its key, a word a draw.

    Seeding a Mersenne Twister costs more than writing a whole item, and an item needs about a
    dozen numbers: a BLAKE2b digest of the key gives eight for a twentieth of that, and the same
    key always gives the same numbers. A word reduced modulo n is uniform to within n / 2**64.
    The blocks after the first are hashed only when an item draws that far.
    """

    __slots__ = ("_word",)

    def __init__(self, key: str | bytes) -> None:
        data = key.encode() if isinstance(key, str) else key
        self._word = itertools.chain(_words(data), _later_blocks(data)).__next__

    def below(self, n: int) -> int:
        """A number in range(n)."""
        if n <= 0:
            raise ValueError(f"empty range below {n}")
        return self._word() % n

    def between(self, low: int, high: int) -> int:
        """A number in range(low, high)."""
        if high <= low:
            raise ValueError(f"empty range from {low} to {high}")
        return low + self._word() % (high - low)

    def pick(self, values: Sequence[Any]) -> Any:
        """One of `values`."""
        if not values:
            raise IndexError("nothing to pick from")
        return values[self._word() % len(values)]

    def random(self) -> float:
        """A float in [0, 1), with 53 random bits."""
        return (self._word() >> 11) * _TWO_TO_MINUS_53

    def uniform(self, low: float, high: float) -> float:
        """A float between low and high."""
        return low + (high - low) * self.random()


def _rng(*parts: object) -> random.Random:
    """A stream of its own per batch (never one global stream), so any of them is built alone."""
    return random.Random(":".join(map(str, parts)))


def _batch_size(expected: float, rng: random.Random) -> int:
    """`expected` rounded up or down at random in proportion: small kinds still change, on average."""
    whole = int(expected)
    return whole + (rng.random() < expected - whole)


_VALUE_TYPES = {bool: "boolean", int: "number", float: "number", str: "string"}


def _value_type(value: object) -> str:
    found = _VALUE_TYPES.get(type(value))
    if found is not None:
        return found
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, (int, float)) else "string"


def _characteristics(pairs: Sequence[tuple[str, object]]) -> list[Item]:
    return [{"name": name, "valueType": _value_type(value), "value": value} for name, value in pairs]


# JSON text as the server writes it: json.dumps(..., separators=(",", ":")), ASCII only.

_JSON_BOOL = {False: "false", True: "true"}


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _float_json(value: float) -> str:
    return float.__repr__(value) if math.isfinite(value) else _dumps(value)


_SCALAR_JSON: dict[type, Callable[[Any], str]] = {str: _json_str, int: int.__repr__, float: _float_json, bool: _dumps}
_CHARACTERISTIC_HEADS: dict[tuple[str, type], tuple[str, Callable[[Any], str]]] = {}  # per (name, value type): a few dozen


def _characteristics_json(pairs: Sequence[tuple[str, object]]) -> str:
    """The JSON text of `_characteristics(pairs)`."""
    members = []
    for name, value in pairs:
        head = _CHARACTERISTIC_HEADS.get((name, type(value)))
        if head is None:
            text = f'{{"name":{_json_str(name)},"valueType":"{_value_type(value)}","value":'
            head = _CHARACTERISTIC_HEADS[name, type(value)] = (text, _SCALAR_JSON.get(type(value), _dumps))
        members.append(f"{head[0]}{head[1](value)}}}")
    return f"[{','.join(members)}]"


@attrs.frozen
class _Weighted:
    """A weighted choice among names, drawn with one pick: each name fills as many places as its weight."""

    places: tuple[str, ...]

    @classmethod
    def of(cls, **weights: int) -> _Weighted:
        return cls(tuple(name for name, weight in weights.items() for _ in range(weight)))

    def draw(self, rng: _Stream) -> str:
        return rng.pick(self.places)

    def at(self, word: int) -> str:
        """The name a random word picks."""
        return self.places[word % len(self.places)]


# --------------------------------------------------------------------------------------------
# The operator's world: customers, offerings, teleports, fleet, bands, resource types


@attrs.frozen
class _Party:
    code: str
    name: str


@attrs.frozen
class _Offering:
    code: str
    name: str
    version: str  # of its service specification
    cir_mbps: tuple[int, int]


@attrs.frozen
class _Teleport:
    code: str
    name: str


@attrs.frozen
class _Satellite:
    name: str
    position: str  # orbital position, e.g. "19.2E"; "MEO" for the medium-orbit constellation
    bands: tuple[str, ...]
    launched: int


@attrs.frozen
class _Band:
    name: str
    uplink_start_mhz: float
    translation_mhz: float  # uplink minus downlink frequency
    spacing_mhz: float  # between transponder centres
    width_mhz: float  # usable transponder bandwidth
    channels: int  # transponders per polarization
    symbol_rates_msps: tuple[float, ...]


OPERATOR = _Party("ORG-SES", "SES S.A.")
CUSTOMERS = tuple(
    _Party(f"CUST-{i + 1:04d}", name)
    for i, name in enumerate((
        "Northwind Shipping", "Aurora Mobile", "Bluewave Broadcasting", "Caspian Energy", "Meridian Airlines",
        "Polaris Telecom", "Atlas Government Services", "Coral Cruises", "Helix Networks", "Sahara Mining",
        "Nordic Ferries", "Pacific Islands Telecom", "Andes Broadband", "Orion Media Group", "Boreal Offshore",
        "Kestrel Aviation", "Tethys Oil & Gas", "Lumen Relief Agency", "Vega Mobile", "Harbor Logistics",
    ))
)
OFFERINGS = (
    _Offering("MAR", "Maritime VSAT", "3.2", (2, 50)),
    _Offering("CBH", "Cellular Backhaul", "2.0", (20, 400)),
    _Offering("ENT", "Enterprise Network", "1.4", (5, 200)),
    _Offering("GOV", "Government Secure Link", "1.1", (10, 300)),
    _Offering("AER", "Aero Connectivity", "2.3", (50, 500)),
    _Offering("BRD", "Broadcast Distribution", "4.0", (30, 120)),
    _Offering("OUV", "Occasional Use Video", "1.7", (8, 45)),
    _Offering("NRG", "Energy Remote Site", "2.5", (2, 30)),
    _Offering("TRK", "IP Trunking", "3.0", (100, 2000)),
)
TELEPORTS = (
    _Teleport("BTZ", "Betzdorf Teleport"), _Teleport("RDU", "Redu Teleport"), _Teleport("MNS", "Manassas Teleport"),
    _Teleport("WDB", "Woodbine Teleport"), _Teleport("VVY", "Vernon Valley Teleport"), _Teleport("HWL", "Hawley Teleport"),
    _Teleport("GIB", "Gibraltar Teleport"), _Teleport("STO", "Stockholm Teleport"), _Teleport("MUC", "Munich Teleport"),
    _Teleport("JNB", "Johannesburg Teleport"), _Teleport("LIM", "Lima Teleport"), _Teleport("PER", "Perth Teleport"),
)
FLEET = (
    _Satellite("ASTRA 1KR", "19.2E", ("Ku",), 2006), _Satellite("ASTRA 1L", "19.2E", ("Ku", "Ka"), 2007),
    _Satellite("ASTRA 1M", "19.2E", ("Ku",), 2008), _Satellite("ASTRA 1N", "19.2E", ("Ku",), 2011),
    _Satellite("ASTRA 2E", "28.2E", ("Ku", "Ka"), 2013), _Satellite("ASTRA 2F", "28.2E", ("Ku", "Ka"), 2012),
    _Satellite("ASTRA 2G", "28.2E", ("Ku", "Ka"), 2014), _Satellite("ASTRA 3B", "23.5E", ("Ku", "Ka"), 2010),
    _Satellite("ASTRA 5B", "31.5E", ("Ku", "Ka"), 2014), _Satellite("SES-4", "22.0W", ("C", "Ku"), 2012),
    _Satellite("SES-5", "5.0E", ("C", "Ku"), 2012), _Satellite("SES-6", "40.5W", ("C", "Ku"), 2013),
    _Satellite("SES-9", "108.2E", ("Ku",), 2016), _Satellite("SES-10", "67.0W", ("Ku",), 2017),
    _Satellite("SES-12", "95.0E", ("Ku", "Ka"), 2018), _Satellite("SES-14", "47.5W", ("C", "Ku"), 2018),
    _Satellite("SES-15", "129.0W", ("Ku", "Ka"), 2017), _Satellite("SES-17", "67.1W", ("Ka",), 2021),
    _Satellite("NSS-12", "57.0E", ("C", "Ku"), 2009), _Satellite("O3b mPOWER 1", "MEO", ("Ka",), 2022),
    _Satellite("O3b mPOWER 2", "MEO", ("Ka",), 2022),
)
BANDS = {
    "C": _Band("C", 5925.0, 2225.0, 40.0, 36.0, 12, (1.0, 2.5, 5.0, 10.0, 27.5)),
    "Ku": _Band("Ku", 14000.0, 2300.0, 40.0, 36.0, 12, (1.0, 2.5, 5.0, 10.0, 27.5)),
    "Ka": _Band("Ka", 27500.0, 9800.0, 250.0, 230.0, 10, (5.0, 10.0, 30.0, 60.0, 150.0)),
}
_BAND_NAMES = tuple(BANDS)

SERVICE_STATES = _Weighted.of(active=78, inactive=4, reserved=5, designed=3, feasibilityChecked=2, terminated=8)
RESOURCE_STATUSES = _Weighted.of(available=70, reserved=8, standby=8, alarm=5, suspended=4, unknown=5)
_CHANGE_NOTES = (
    "capacity change", "re-pointed after maintenance", "firmware upgrade", "customer requested change",
    "migrated to new equipment", "configuration audit", "contract renewal", "fault repaired",
)
_STARTED_STATES = ("active", "inactive", "terminated")
_CONTRACT_YEARS = (1, 2, 3, 5)
_MIR_MULTIPLIERS = (1, 2, 4)  # maximum information rate over committed
_SERVICE_LEVELS = ("Gold", "Silver", "Bronze")
_ADMINISTRATIVE_STATES = {"suspended": "locked", "reserved": "locked", "unknown": "shutdown"}  # else "unlocked"
_ELEMENT_TYPES = ("SCPC Carrier", "MCPC Carrier", "DVB-S2 Outroute", "TDMA Inroute")
_MODULATIONS = ("QPSK 3/4", "8PSK 2/3", "8PSK 5/6", "16APSK 3/4", "32APSK 4/5")


@attrs.frozen
class _ResourceType:
    name: str  # its "@type"
    abbreviation: str  # in names and specification ids
    weight: int  # numbers out of every 100 resource numbers
    logical: bool
    models: tuple[str, ...]  # its resource specifications
    parents: tuple[tuple[str, str], ...] = ()  # (type, relationshipType); the first is where it sits
    in_orbit: bool = False  # placed at an orbital position rather than a teleport
    leased: bool = False  # used by one customer, who appears as a related party


RESOURCE_TYPES = (
    _ResourceType("Satellite", "SAT", 1, False, ("Airbus Eurostar E3000", "Boeing 702SP", "Thales Spacebus 4000"), in_orbit=True),
    _ResourceType("Transponder", "TP", 5, False, ("Wideband transponder", "HTS beam transponder"), (("Satellite", "isContainedIn"),), in_orbit=True),
    _ResourceType("BandwidthSegment", "BWS", 10, True, ("Leased bandwidth segment",), (("Transponder", "isContainedIn"),), in_orbit=True, leased=True),
    _ResourceType("Antenna", "ANT", 5, False, ("CPI 9.3m", "General Dynamics 7.3m", "Viasat 13m", "Intellian 2.4m")),
    _ResourceType("Amplifier", "AMP", 5, False, ("Comtech Xicom TWTA", "Norsat BUC", "Advantech SSPA"), (("Antenna", "isContainedIn"),)),
    _ResourceType("Modem", "MDM", 15, False, ("iDirect iQ 200", "Comtech CDM-760", "Newtec MDM2510", "iDirect 950mp"), (("Antenna", "reliesOn"),), leased=True),
    _ResourceType("Slot", "SLT", 6, False, ("Chassis slot",), (("Modem", "isContainedIn"),)),
    _ResourceType("Card", "CRD", 10, False, ("iDirect XLC-11 line card", "Comtech CTOG-250 card", "Newtec demodulator card"), (("Slot", "isContainedIn"),)),
    _ResourceType("Port", "PRT", 16, False, ("1GE copper port", "10GE SFP+ port"), (("Card", "isContainedIn"),)),
    _ResourceType("LogicalPort", "LPT", 10, True, ("802.1Q sub-interface",), (("Port", "reliesOn"),), leased=True),
    _ResourceType("Circuit", "CKT", 12, True, ("Layer 2 circuit", "IP transit circuit"), (("LogicalPort", "reliesOn"), ("BandwidthSegment", "reliesOn")), leased=True),
    _ResourceType("Multicast", "MCS", 5, True, ("IP multicast group",), (("Circuit", "reliesOn"),), leased=True),
)
_TYPE_INDEX = {resource_type.name: i for i, resource_type in enumerate(RESOURCE_TYPES)}


class _ResourcePattern:
    """Which type each resource number (from 1) has: a pattern of 100 positions, repeating.

    Every type comes once first, in hierarchy order (so even a handful of resources has a satellite
    for its transponders); the other positions are a seeded shuffle of the remaining weights.
    """

    def __init__(self, seed: int) -> None:
        rest = [i for i, kind in enumerate(RESOURCE_TYPES) for _ in range(kind.weight - 1)]
        _rng(seed, "resource-pattern").shuffle(rest)
        self._type_at = list(range(len(RESOURCE_TYPES))) + rest
        self.period = len(self._type_at)
        self._positions = [[p for p, t in enumerate(self._type_at) if t == i] for i in range(len(RESOURCE_TYPES))]
        self._ordinal = [self._positions[t].index(p) for p, t in enumerate(self._type_at)]

    def number(self, type_index: int, slot: int) -> int:
        """The resource number (from 1) of a type's slot."""
        positions = self._positions[type_index]
        cycle, i = divmod(slot, len(positions))
        return cycle * self.period + positions[i] + 1

    def locate(self, number: int) -> tuple[int, int]:
        """(type index, slot) of a resource number."""
        cycle, position = divmod(number - 1, self.period)
        type_index = self._type_at[position]
        return type_index, cycle * len(self._positions[type_index]) + self._ordinal[position]

    def count(self, type_index: int, numbers: int) -> int:
        """How many of the first `numbers` resource numbers have this type."""
        cycle, rest = divmod(numbers, self.period)
        positions = self._positions[type_index]
        return cycle * len(positions) + bisect.bisect_left(positions, rest)


# --------------------------------------------------------------------------------------------
# Numbering: slot <-> the number in an id


class _Numbering(Protocol):
    def number(self, slot: int) -> int: ...
    def slot(self, number: int) -> int | None: ...


class _Sequential:
    """Services and carriers: slot 0 is number 1, and so on."""

    def number(self, slot: int) -> int:
        return slot + 1

    def slot(self, number: int) -> int | None:
        return number - 1 if number >= 1 else None


@attrs.frozen
class _ByResourceType:
    """One resource type's share of the resource numbers."""

    pattern: _ResourcePattern
    type_index: int

    def number(self, slot: int) -> int:
        return self.pattern.number(self.type_index, slot)

    def slot(self, number: int) -> int | None:
        if number < 1:
            return None
        type_index, slot = self.pattern.locate(number)
        return slot if type_index == self.type_index else None


_SEQUENTIAL = _Sequential()


# --------------------------------------------------------------------------------------------
# Content: item bodies as pure functions of (seed, kind, number, variant)


@attrs.frozen
class _Variant:
    """Which version of an item's changeable fields: the original, its n-th change, or an extra copy."""

    revision: int = 0
    copy: int = 0  # the kind's n-th extra item: a duplicate, or (empty_id) one whose id got lost
    empty_id: bool = False


_ORIGINAL = _Variant()


@attrs.frozen
class _Transponder:
    satellite_slot: int
    satellite: _Satellite
    band: _Band
    label: str  # e.g. "Ku07H"
    uplink_mhz: float  # centre frequencies
    downlink_mhz: float


class _Fixed(NamedTuple):
    """A reference that depends only on a few constants (a customer and role, a teleport, an offering):
    built and encoded once per inventory, handed out as a fresh copy or as its JSON text."""

    item: Item
    text: str

    def fresh(self) -> Item:
        return dict(self.item)  # references are flat: a shallow copy is a fresh one


class _ServiceProfile(NamedTuple):
    """What a service's customer and offering decide, built once per pair: values for the dict,
    and the JSON text around the values each service draws, for the text."""

    customer: _Party
    offering: _Offering
    name: str  # the service's name up to its number
    party: _Fixed  # the customer, as related party
    specification: _Fixed
    contract_prefix: str  # "CTR-<customer>-", the contract number up to its digits
    name_json: str  # '"name":"<name>' up to the number
    description_json: str  # '","description":"<offering> for <customer>, ' up to the CIR
    type_json: str  # the members from "category" to "serviceType", with their trailing comma
    related_json: str  # '"relatedParty":[...],"place":[' up to the place
    specification_json: str  # '],"serviceSpecification":{...},"supportingResource":[' up to the resources


class _ServiceSite(NamedTuple):
    """A teleport as a service's description and place name it, built once per teleport."""

    teleport: _Teleport
    place: _Fixed
    description_json: str  # " Mbps CIR via <teleport>" as JSON string content (no quotes)


_SERVICE_STATE_JSON = {  # per state, its JSON members "state", "hasStarted" and "isServiceEnabled"
    state: f'"state":"{state}","hasStarted":{_JSON_BOOL[state in _STARTED_STATES]},"isServiceEnabled":{_JSON_BOOL[state == "active"]},'
    for state in SERVICE_STATES.places
}


class _Content:
    """Builds item bodies: everything but ``id``, ``href`` and ``lastUpdate``.

    References point at slots of the initial inventory, chosen arithmetically or from the item's
    own random stream, so building an item never builds another.

    Each body method draws an item's values once and then assembles one of two forms: the dict,
    or (``text=True``) the members of its JSON object exactly as ``json.dumps(item,
    separators=(",", ":"))`` writes them between the braces, which a server can send without
    building and encoding the dict. The two assemblers sit side by side and must agree byte for
    byte (the tests compare them item by item).
    """

    def __init__(self, spec: InventorySpec, href_base: str) -> None:
        self._seed = spec.seed
        self._start = int(spec.start)
        self._href_base = href_base
        self._services = spec.services
        self.pattern = _ResourcePattern(spec.seed)
        self.resource_counts = {kind.name: self.pattern.count(i, spec.resources) for i, kind in enumerate(RESOURCE_TYPES)}
        self._resource_characteristics: dict[str, Callable[[int, int, _Stream], list[tuple[str, object]]]] = {
            "Satellite": self._satellite_characteristics,
            "Transponder": self._transponder_characteristics,
            "BandwidthSegment": self._segment_characteristics,
            "Antenna": self._antenna_characteristics,
            "Amplifier": self._amplifier_characteristics,
            "Modem": self._modem_characteristics,
            "Slot": self._slot_characteristics,
            "Card": self._card_characteristics,
            "Port": self._port_characteristics,
            "LogicalPort": self._logical_port_characteristics,
            "Circuit": self._circuit_characteristics,
            "Multicast": self._multicast_characteristics,
        }
        # The JSON text of an href up to the id: add the id and the closing quote.
        self._service_href_json = _json_str(f"{href_base}{SERVICE_PATH}/")[:-1]
        self._resource_href_json = _json_str(f"{href_base}{RESOURCE_PATH}/")[:-1]
        self._fixed_refs: dict[tuple[str, ...], _Fixed] = {}  # a few dozen at most: see _Fixed
        self._service_profiles: list[_ServiceProfile | None] = [None] * (len(CUSTOMERS) * len(OFFERINGS))
        self._service_sites = tuple(
            _ServiceSite(teleport, self._site(teleport, "teleport"), _json_str(f" Mbps CIR via {teleport.name}")[1:-1]) for teleport in TELEPORTS
        )
        # The resources a service relies on, each picked by one of its words: (type, count, word index).
        self._service_supports = tuple(
            (name, self.resource_counts[name], word) for name, word in (("Modem", 5), ("Circuit", 6), ("BandwidthSegment", 7)) if self.resource_counts[name]
        )

    # References ------------------------------------------------------------------------------

    def _reference(self, path: str, ref_id: str, name: str, referred_type: str, **more: str) -> Item:
        return {"id": ref_id, "href": f"{self._href_base}{path}/{ref_id}", "name": name, **more, "@referredType": referred_type}

    def _fixed(self, key: tuple[str, ...], build: Callable[[], Item]) -> _Fixed:
        found = self._fixed_refs.get(key)
        if found is None:
            item = build()
            found = self._fixed_refs[key] = _Fixed(item, _dumps(item))
        return found

    def _party(self, party: _Party, role: str) -> _Fixed:
        return self._fixed(
            ("party", party.code, role), lambda: self._reference(_ORGANIZATION_PATH, party.code, party.name, "Organization", role=role)
        )

    def _site(self, teleport: _Teleport, role: str) -> _Fixed:
        found = self._fixed_refs.get(("site", teleport.code, role))  # looked up first: every item has a site
        if found is not None:
            return found
        return self._fixed(
            ("site", teleport.code, role), lambda: self._reference(_SITE_PATH, f"SITE-{teleport.code}", teleport.name, "GeographicSite", role=role)
        )

    def _orbital_position(self, satellite: _Satellite) -> _Fixed:
        position = satellite.position.replace(".", "")
        return self._fixed(
            ("orbit", position),
            lambda: self._reference(_SITE_PATH, f"ORBIT-{position}", f"{satellite.position} orbital position", "GeographicSite", role="orbitalPosition"),
        )

    def _specification(self, path: str, spec_id: str, name: str, referred_type: str, version: str) -> _Fixed:
        return self._fixed(("specification", spec_id, name), lambda: self._reference(path, spec_id, name, referred_type, version=version))

    def resource_ref(self, type_name: str, slot: int) -> Item:
        number = self.pattern.number(_TYPE_INDEX[type_name], slot)
        return self._reference(RESOURCE_PATH, f"RES-{number:07d}", self.resource_name(type_name, slot), type_name)

    def _resource_ref_json(self, type_name: str, slot: int) -> str:
        ref_id = f"RES-{self.pattern.number(_TYPE_INDEX[type_name], slot):07d}"
        name = _json_str(self.resource_name(type_name, slot))
        return f'{{"id":"{ref_id}","href":{self._resource_href_json}{ref_id}","name":{name},"@referredType":"{type_name}"}}'

    def _service_ref(self, slot: int) -> Item:
        return self._reference(SERVICE_PATH, f"SVC-{_SEQUENTIAL.number(slot):07d}", self.service_identity(slot)[2], "Service")

    def _service_ref_json(self, slot: int) -> str:
        ref_id = f"SVC-{_SEQUENTIAL.number(slot):07d}"
        name = _json_str(self.service_identity(slot)[2])
        return f'{{"id":"{ref_id}","href":{self._service_href_json}{ref_id}","name":{name},"@referredType":"Service"}}'

    def _pick(self, rng: _Stream, type_name: str) -> int | None:
        """A random slot of that resource type in the initial inventory, if it has any."""
        count = self.resource_counts[type_name]
        return rng.below(count) if count else None

    # Identities other items refer to: the first draw of the item's stream ------------------

    def _service_profile(self, word: int) -> _ServiceProfile:
        """A service's customer and offering: the first of its words picks them."""
        pick = word % len(self._service_profiles)
        profile = self._service_profiles[pick]
        if profile is None:
            customer, offering = CUSTOMERS[pick % len(CUSTOMERS)], OFFERINGS[pick // len(CUSTOMERS)]
            specification = self._specification(
                _SERVICE_SPECIFICATION_PATH, f"SS-{offering.code}", offering.name, "ServiceSpecification", offering.version
            )
            party = self._party(customer, "customer")
            name = f"{customer.name} {offering.name} "
            profile = _ServiceProfile(
                customer,
                offering,
                name,
                party,
                specification,
                contract_prefix=f"CTR-{customer.code[-4:]}-",
                name_json=f'"name":{_json_str(name)[:-1]}',
                description_json=f'","description":{_json_str(f"{offering.name} for {customer.name}, ")[:-1]}',
                type_json=f'"category":"CFS","@type":"CustomerFacingService","serviceType":{_json_str(offering.name)},',
                related_json=f'"relatedParty":[{party.text}],"place":[',
                specification_json=f'],"serviceSpecification":{specification.text},"supportingResource":[',
            )
            self._service_profiles[pick] = profile
        return profile

    def service_identity(self, slot: int) -> tuple[_Party, _Offering, str]:
        """(customer, offering, name) of a service."""
        profile = self._service_profile(_words(b"%d:service:%d" % (self._seed, slot))[0])
        return profile.customer, profile.offering, f"{profile.name}{slot + 1}"

    def _ancestor(self, type_name: str, slot: int, wanted: str) -> int | None:
        """The slot of the `wanted` type this resource sits in (following first parents), if any."""
        while type_name != wanted:
            parents = RESOURCE_TYPES[_TYPE_INDEX[type_name]].parents
            if not parents or not self.resource_counts[parents[0][0]]:
                return None
            type_name = parents[0][0]
            slot %= self.resource_counts[type_name]
        return slot

    def _teleport_index(self, type_name: str, slot: int) -> int:
        """Where in TELEPORTS the teleport of this resource is: its antenna's."""
        antenna = self._ancestor(type_name, slot, "Antenna")
        return (slot if antenna is None else antenna) % len(TELEPORTS)

    def _teleport_of(self, type_name: str, slot: int) -> _Teleport:
        return TELEPORTS[self._teleport_index(type_name, slot)]

    def _satellite(self, slot: int) -> _Satellite:
        return FLEET[slot % len(FLEET)]

    def _satellite_name(self, slot: int) -> str:
        satellite, unit = self._satellite(slot), slot // len(FLEET)
        return satellite.name if unit == 0 else f"{satellite.name} ({unit + 1})"

    def _transponder(self, slot: int) -> _Transponder:
        satellites = self.resource_counts["Satellite"]
        satellite_slot, index = (slot % satellites, slot // satellites) if satellites else (0, slot)
        satellite = self._satellite(satellite_slot)
        band = BANDS[satellite.bands[index % len(satellite.bands)]]
        channel = index // len(satellite.bands)
        polarization = "HV"[(channel // band.channels) % 2]
        uplink = band.uplink_start_mhz + band.spacing_mhz * (channel % band.channels + 0.5)
        label = f"{band.name}{channel % band.channels + 1:02d}{polarization}"
        return _Transponder(satellite_slot, satellite, band, label, uplink, uplink - band.translation_mhz)

    def resource_name(self, type_name: str, slot: int) -> str:
        if type_name == "Satellite":
            return self._satellite_name(slot)
        if type_name == "Transponder":
            transponder = self._transponder(slot)
            return f"{self._satellite_name(transponder.satellite_slot)} {transponder.label}"
        if type_name == "BandwidthSegment":
            transponder_slot = self._ancestor(type_name, slot, "Transponder")
            holder = self.resource_name("Transponder", slot if transponder_slot is None else transponder_slot)
            return f"{holder} segment {self._ordinal(type_name, slot)}"
        number = self.pattern.number(_TYPE_INDEX[type_name], slot)
        return f"{self._teleport_of(type_name, slot).code}-{RESOURCE_TYPES[_TYPE_INDEX[type_name]].abbreviation}-{number:07d}"

    def _ordinal(self, type_name: str, slot: int) -> int:
        """1-based position of a resource among its parent's children of its type."""
        parents = RESOURCE_TYPES[_TYPE_INDEX[type_name]].parents
        count = self.resource_counts[parents[0][0]] if parents else 0
        return slot // count + 1 if count else slot + 1

    # Changeable fields -----------------------------------------------------------------------

    def _variant_rng(self, rng: _Stream, kind: str, number: int, variant: _Variant) -> _Stream:
        """The stream for the fields a change rewrites: the item's own for the original, else one per variant.

        Those fields are drawn last, so every variant shares the stable part of the item.
        """
        if variant is _ORIGINAL or variant == _ORIGINAL:
            return rng
        return self._variant_stream(kind, number, variant)

    def _variant_stream(self, kind: str, number: int, variant: _Variant) -> _Stream:
        """The stream of a changed or copied item's changeable fields (the copy number tells extras apart)."""
        return _Stream(f"{self._seed}:{kind}:{number}:r{variant.revision}c{variant.copy}")

    @staticmethod
    def _describe(description: str, variant: _Variant, rng: _Stream) -> str:
        if variant.revision:
            return f"{description}; change {variant.revision}: {rng.pick(_CHANGE_NOTES)}"
        if variant.copy:
            return f"{description}; {'record without id' if variant.empty_id else 'duplicate record'} {variant.copy}"
        return description

    # Bodies ----------------------------------------------------------------------------------

    def service(self, slot: int, variant: _Variant, text: bool = False) -> Item | str:
        # The most numerous kind draws its numbers straight from its eight words (see `_words`):
        # profile, start, creation, term and contract details, CIR, modem, circuit, segment. Its
        # text is the profile's and the site's ready JSON around the values drawn (a page of
        # services is mostly that).
        words = _words(b"%d:service:%d" % (self._seed, slot))
        w_profile, w_start, w_created, w_terms, w_cir, w_modem, _, _ = words
        # The profile cache read here first: on a page of services, the call to fill it costs more than the reading.
        profile = self._service_profiles[w_profile % len(self._service_profiles)] or self._service_profile(w_profile)
        offering = profile.offering
        started = self._start - (30 * DAY + w_start % (6 * YEAR - 30 * DAY))
        created = started - (7 * DAY + w_created % (83 * DAY))
        # w_terms in mixed radix: term (4), MIR multiplier (3), service level (3), then contract (10**6) and state.
        term = _CONTRACT_YEARS[w_terms % 4] * YEAR
        ends = started + term * (1 + (self._start - started) // term)  # contracts renew: the next end is ahead
        low, high = offering.cir_mbps
        cir = low + w_cir % (high + 1 - low)
        maximum, level = cir * _MIR_MULTIPLIERS[w_terms // 4 % 3], _SERVICE_LEVELS[w_terms // 12 % 3]
        state_word, contract_number = divmod(w_terms // 36, 10**6)
        contract = f"{profile.contract_prefix}{contract_number:06d}"
        # (Without resources to rely on, not even an empty comprehension: it costs a call per service.)
        resources = [(name, words[word] % count) for name, count, word in self._service_supports] if self._service_supports else []
        modem = resources[0][1] if resources and resources[0][0] == "Modem" else None
        site = self._service_sites[w_modem % len(TELEPORTS) if modem is None else self._teleport_index("Modem", modem)]
        if variant is _ORIGINAL or variant == _ORIGINAL:
            state, note = SERVICE_STATES.at(state_word), ""
        else:
            changes = self._variant_stream("service", slot, variant)
            state = SERVICE_STATES.draw(changes)
            note = self._describe("", variant, changes)
        if text:
            return (
                f'{profile.name_json}{slot + 1}{profile.description_json}{cir}{site.description_json}{_json_str(note)[1:-1] if note else ""}",'
                f'{profile.type_json}{_SERVICE_STATE_JSON[state]}'
                f'"serviceDate":"{iso_utc(created)}","startDate":"{iso_utc(started)}","endDate":"{iso_utc(ends)}",'
                f'{profile.related_json}{site.place.text}{profile.specification_json}'
                f'{",".join([self._resource_ref_json(*resource) for resource in resources])}],'
                # _characteristics_json, spelled out: every service has these four
                f'"serviceCharacteristic":[{{"name":"CommittedInformationRateMbps","valueType":"number","value":{cir}}},'
                f'{{"name":"MaximumInformationRateMbps","valueType":"number","value":{maximum}}},'
                f'{{"name":"ServiceLevel","valueType":"string","value":"{level}"}},'
                f'{{"name":"ContractNumber","valueType":"string","value":"{contract}"}}]'
            )
        return {
            "name": f"{profile.name}{slot + 1}",
            "description": f"{offering.name} for {profile.customer.name}, {cir} Mbps CIR via {site.teleport.name}{note}",
            "category": "CFS",
            "@type": "CustomerFacingService",
            "serviceType": offering.name,
            "state": state,
            "hasStarted": state in _STARTED_STATES,
            "isServiceEnabled": state == "active",
            "serviceDate": iso_utc(created),
            "startDate": iso_utc(started),
            "endDate": iso_utc(ends),
            "relatedParty": [profile.party.fresh()],
            "place": [site.place.fresh()],
            "serviceSpecification": profile.specification.fresh(),
            "supportingResource": [self.resource_ref(*resource) for resource in resources],
            "serviceCharacteristic": _characteristics(
                [
                    ("CommittedInformationRateMbps", cir),
                    ("MaximumInformationRateMbps", maximum),
                    ("ServiceLevel", level),
                    ("ContractNumber", contract),
                ]
            ),
        }

    def carrier(self, slot: int, variant: _Variant, text: bool = False) -> Item | str:
        rng = _Stream(f"{self._seed}:carrier:{slot}")
        transponder_slot = self._pick(rng, "Transponder")
        # Without transponder resources the carrier still needs a frequency plan: a notional transponder.
        transponder = self._transponder(slot if transponder_slot is None else transponder_slot)
        band = transponder.band
        symbol_rate = rng.pick(band.symbol_rates_msps)
        room = max(0.0, (band.width_mhz - symbol_rate * 1.2) / 2)  # occupied bandwidth at roll-off 0.2
        uplink = round(transponder.uplink_mhz + rng.uniform(-room, room), 3)
        services = sorted({rng.below(self._services) for _ in range(rng.between(1, 4))}) if self._services else []
        teleport = rng.pick(TELEPORTS)
        created = self._start - rng.between(30 * DAY, 4 * YEAR)
        element_type = rng.pick(_ELEMENT_TYPES)
        satellite_short = transponder.satellite.name.replace(" ", "").replace("-", "")
        alias = f"{satellite_short}-{transponder.label}-{slot:05d}"
        resources = []
        if transponder_slot is not None:
            if self.resource_counts["Satellite"]:
                resources.append(("Satellite", transponder.satellite_slot))
            resources.append(("Transponder", transponder_slot))
        characteristics = [
            ("ElementType", element_type),
            ("UplinkAlias", f"UL-{alias}"),
            ("DownlinkAlias", f"DL-{alias}"),
            ("UplinkCenterFrequencyMHz", uplink),
            ("DownlinkCenterFrequencyMHz", round(uplink - band.translation_mhz, 3)),
            ("SymbolRateMsps", symbol_rate),
            ("Modulation", rng.pick(_MODULATIONS)),
            ("Polarization", transponder.label[-1]),
        ]
        changes = self._variant_rng(rng, "carrier", slot, variant)
        state = SERVICE_STATES.draw(changes)
        satellite_name = self._satellite_name(transponder.satellite_slot)
        description = self._describe(f"{element_type} on {satellite_name} {transponder.label}, uplinked from {teleport.name}", variant, changes)
        began = created + rng.between(DAY, 30 * DAY)  # drawn after the changeable fields, as it always was
        party = self._party(self.service_identity(services[0])[0], "customer") if services else self._party(OPERATOR, "operator")
        place = self._site(teleport, "uplinkSite")
        specification = self._specification(_SERVICE_SPECIFICATION_PATH, "SS-CARRIER", "Satellite Carrier", "ServiceSpecification", "1.0")
        name = f"{satellite_name} {transponder.label} CXR {slot + 1}"
        if text:
            return (
                f'"name":{_json_str(name)},"description":{_json_str(description)},"category":"RFS","@type":"element","serviceType":"Carrier",'
                f'"state":"{state}","hasStarted":{_JSON_BOOL[state in _STARTED_STATES]},"isServiceEnabled":{_JSON_BOOL[state == "active"]},'
                f'"serviceDate":"{iso_utc(created)}","startDate":"{iso_utc(began)}","relatedParty":[{party.text}],"place":[{place.text}],'
                f'"serviceSpecification":{specification.text},'
                f'"supportingResource":[{",".join([self._resource_ref_json(*resource) for resource in resources])}],'
                f'"supportingService":[{",".join([self._service_ref_json(service) for service in services])}],'
                f'"serviceCharacteristic":{_characteristics_json(characteristics)}'
            )
        return {
            "name": name,
            "description": description,
            "category": "RFS",
            "@type": "element",
            "serviceType": "Carrier",
            "state": state,
            "hasStarted": state in _STARTED_STATES,
            "isServiceEnabled": state == "active",
            "serviceDate": iso_utc(created),
            "startDate": iso_utc(began),
            "relatedParty": [party.fresh()],
            "place": [place.fresh()],
            "serviceSpecification": specification.fresh(),
            "supportingResource": [self.resource_ref(*resource) for resource in resources],
            "supportingService": [self._service_ref(service) for service in services],
            "serviceCharacteristic": _characteristics(characteristics),
        }

    def resource(self, type_index: int, slot: int, variant: _Variant, text: bool = False) -> Item | str:
        kind = RESOURCE_TYPES[type_index]
        number = self.pattern.number(type_index, slot)
        rng = _Stream(f"{self._seed}:resource:{number}")
        model_index = rng.below(len(kind.models))
        model = kind.models[model_index]
        started = self._start - rng.between(60 * DAY, 10 * YEAR)
        characteristics = self._resource_characteristics[kind.name](slot, number, rng)
        parties = [self._party(OPERATOR, "owner")]
        if kind.leased:
            parties.append(self._party(rng.pick(CUSTOMERS), "user"))
        if kind.in_orbit:
            satellite = self._ancestor(kind.name, slot, "Satellite")
            place = self._orbital_position(self._satellite(slot if satellite is None else satellite))
        else:
            place = self._site(self._teleport_of(kind.name, slot), "installationSite")
        relationships = [
            (relationship, parent, slot % self.resource_counts[parent]) for parent, relationship in kind.parents if self.resource_counts[parent]
        ]
        changes = self._variant_rng(rng, "resource", number, variant)
        status = RESOURCE_STATUSES.draw(changes)
        description = self._describe(f"{model} at {place.item['name']}", variant, changes)
        usage = "idle" if status != "available" else changes.pick(("active", "busy"))
        specification = self._specification(
            _RESOURCE_SPECIFICATION_PATH, f"RS-{kind.abbreviation}-{model_index + 1:02d}", model, "ResourceSpecification", "1.0"
        )
        category, base_type = ("logical", "LogicalResource") if kind.logical else ("physical", "PhysicalResource")
        operational = "disable" if status in ("alarm", "unknown", "suspended") else "enable"
        administrative = _ADMINISTRATIVE_STATES.get(status, "unlocked")
        if text:
            related = [
                f'{{"relationshipType":"{relationship}","resource":{self._resource_ref_json(parent, parent_slot)}}}'
                for relationship, parent, parent_slot in relationships
            ]
            return (
                f'"name":{_json_str(self.resource_name(kind.name, slot))},"description":{_json_str(description)},"category":"{category}",'
                f'"@type":"{kind.name}","@baseType":"{base_type}","resourceVersion":"1.{variant.revision}","resourceStatus":"{status}",'
                f'"operationalState":"{operational}","administrativeState":"{administrative}","usageState":"{usage}",'
                f'"startOperatingDate":"{iso_utc(started)}","resourceSpecification":{specification.text},'
                f'"resourceCharacteristic":{_characteristics_json(characteristics)},'
                f'"relatedParty":[{",".join([party.text for party in parties])}],"place":{place.text},"resourceRelationship":[{",".join(related)}]'
            )
        return {
            "name": self.resource_name(kind.name, slot),
            "description": description,
            "category": category,
            "@type": kind.name,
            "@baseType": base_type,
            "resourceVersion": f"1.{variant.revision}",
            "resourceStatus": status,
            "operationalState": operational,
            "administrativeState": administrative,
            "usageState": usage,
            "startOperatingDate": iso_utc(started),
            "resourceSpecification": specification.fresh(),
            "resourceCharacteristic": _characteristics(characteristics),
            "relatedParty": [party.fresh() for party in parties],
            "place": place.fresh(),
            "resourceRelationship": [
                {"relationshipType": relationship, "resource": self.resource_ref(parent, parent_slot)}
                for relationship, parent, parent_slot in relationships
            ],
        }

    # Resource characteristics, one function per type: (slot, number, rng) -> (name, value) pairs

    def _satellite_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        satellite = self._satellite(slot)
        orbit = "MEO" if satellite.position == "MEO" else "GEO"
        return [("OrbitalPosition", satellite.position), ("OrbitType", orbit), ("Bands", ",".join(satellite.bands)), ("LaunchYear", satellite.launched)]

    def _transponder_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        transponder = self._transponder(slot)
        return [
            ("Band", transponder.band.name),
            ("Polarization", transponder.label[-1]),
            ("BandwidthMHz", transponder.band.width_mhz),
            ("UplinkCenterFrequencyMHz", transponder.uplink_mhz),
            ("DownlinkCenterFrequencyMHz", transponder.downlink_mhz),
        ]

    def _segment_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        holder = self._ancestor("BandwidthSegment", slot, "Transponder")
        transponder = self._transponder(slot if holder is None else holder)
        width = rng.pick((2.0, 4.5, 9.0, 18.0)) * (transponder.band.width_mhz / 36.0)
        low = transponder.downlink_mhz - transponder.band.width_mhz / 2
        start = round(low + rng.uniform(0.0, transponder.band.width_mhz - width), 3)
        return [("StartFrequencyMHz", start), ("StopFrequencyMHz", round(start + width, 3)), ("BandwidthMHz", round(width, 3))]

    def _antenna_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        return [
            ("DiameterM", rng.pick((2.4, 3.7, 4.5, 6.3, 7.3, 9.3, 13.0))),
            ("Band", rng.pick(_BAND_NAMES)),
            ("AzimuthDeg", round(rng.uniform(90.0, 270.0), 1)),
            ("ElevationDeg", round(rng.uniform(5.0, 60.0), 1)),
        ]

    def _amplifier_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        return [("AmplifierType", rng.pick(("BUC", "SSPA", "TWTA"))), ("OutputPowerW", rng.pick((25, 40, 100, 400, 750)))]

    def _modem_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        site = self._teleport_index("Modem", slot)
        return [
            ("SerialNumber", f"SN{rng.below(10**8):08d}"),
            ("ManagementIp", f"10.{site}.{(number >> 8) & 255}.{number & 255}"),
            ("FirmwareVersion", rng.pick(("4.1.2", "4.2.0", "5.0.1", "5.1.3"))),
        ]

    def _slot_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        return [("SlotNumber", self._ordinal("Slot", slot))]

    def _card_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        return [("CardType", rng.pick(("Line card", "Transmit card", "Receive card", "Controller"))), ("SerialNumber", f"SN{rng.below(10**8):08d}")]

    def _port_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        return [("PortNumber", self._ordinal("Port", slot)), ("SpeedMbps", rng.pick((100, 1000, 10000))), ("Medium", rng.pick(("copper", "fiber")))]

    def _logical_port_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        return [("VlanId", rng.between(2, 4095)), ("Encapsulation", rng.pick(("802.1Q", "QinQ")))]

    def _circuit_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        return [("CircuitId", f"CKT-{number:07d}"), ("CapacityMbps", rng.pick((10, 50, 100, 250, 1000))), ("Protection", rng.pick(("none", "1+1")))]

    def _multicast_characteristics(self, slot: int, number: int, rng: _Stream) -> list[tuple[str, object]]:
        group = f"239.{rng.below(256)}.{rng.below(256)}.{rng.between(1, 255)}"
        return [("GroupAddress", group), ("SourceAddress", f"10.200.{rng.below(256)}.{rng.between(1, 255)}"), ("BitrateMbps", rng.pick((2, 6, 12, 20)))]


# --------------------------------------------------------------------------------------------
# Time: initial lastUpdate values and the daily batches


class _InitialTimes:
    """Each initial item's lastUpdate, spread over the year before `start` in a seeded order.

    The order is an affine permutation of the slots (rank = a*slot + b mod n), so the slots
    updated since a given time are a run of ranks, found by bisection and inverted one by one.
    """

    def __init__(self, count: int, start: int, rng: random.Random) -> None:
        self._count = count
        self._start = start
        self._multiplier = 1
        while count > 2:  # any multiplier coprime with the count permutes it
            self._multiplier = rng.randrange(1, count)
            if math.gcd(self._multiplier, count) == 1:
                break
        self._offset = rng.randrange(count) if count else 0
        self._inverse = pow(self._multiplier, -1, count) if count > 1 else 0
        self._jitter_span = max(1, YEAR // count) if count else 1
        self._jitter_salt = rng.randrange(YEAR)

    def _at_rank(self, rank: int) -> int:
        # Non-decreasing in rank: the jitter never reaches the next rank's share of the year.
        jitter = (rank * 2_654_435_761 + self._jitter_salt) % self._jitter_span
        return self._start - YEAR + rank * YEAR // self._count + jitter

    def of(self, slot: int) -> int:
        return self._at_rank((self._multiplier * slot + self._offset) % self._count)

    def slots_since(self, epoch: float) -> Iterator[int]:
        first = bisect.bisect_left(range(self._count), epoch, key=self._at_rank)
        for rank in range(first, self._count):
            yield (self._inverse * (rank - self._offset)) % self._count


class _LiveSet:
    """Which slots still exist: flags plus a Fenwick tree over them, for O(log n) rank and select."""

    def __init__(self, size: int) -> None:
        self._flags = bytearray(b"\x01") * size
        # With every flag set, node i holds its range length, the lowest set bit of i: the nodes
        # with lowest bit p are p, 3p, 5p, ..., filled a power of two at a time.
        self._tree = array("i", bytes(4 * (size + 1)))
        power = 1
        while power <= size:
            self._tree[power :: 2 * power] = array("i", [power]) * len(range(power, size + 1, 2 * power))
            power *= 2
        self.count = size

    def __contains__(self, slot: int) -> bool:
        return self._flags[slot] == 1

    def append(self) -> None:
        node = len(self._tree)  # 1-based node of the new slot; it covers (node - lowbit, node]
        self._tree.append(1 + self.live_before(node - 1) - self.live_before(node - (node & -node)))
        self._flags.append(1)
        self.count += 1

    def remove(self, slot: int) -> None:
        if not self._flags[slot]:
            return
        self._flags[slot] = 0
        node = slot + 1
        while node < len(self._tree):
            self._tree[node] -= 1
            node += node & -node
        self.count -= 1

    def live_before(self, slots: int) -> int:
        """How many of the first `slots` slots are live."""
        total = 0
        while slots:
            total += self._tree[slots]
            slots &= slots - 1
        return total

    def select(self, rank: int) -> int:
        """The slot of the live item with this 0-based rank."""
        node, remaining = 0, rank + 1
        step = 1 << (len(self._tree) - 1).bit_length()
        while step:
            following = node + step
            if following < len(self._tree) and self._tree[following] < remaining:
                node, remaining = following, remaining - self._tree[following]
            step >>= 1
        return node  # the 1-based node after `node` is the slot, so its 0-based slot is `node`


class _Event(NamedTuple):
    time: int
    action: str  # "change", "arrive" or "remove"
    slot: int


@attrs.frozen
class _Rates:
    churn: float
    arrivals: float
    removals: float

    @property
    def active(self) -> bool:
        return bool(self.churn or self.arrivals or self.removals)


_TOUCH_LOG_FLOOR = 1024  # entries a timeline's log of touched slots always may hold


class _Timeline:
    """What simulated time did to one kind's slots, applied up to `time`: changes, arrivals, removals.

    The per-slot arrays appear with the first event that needs them; a kind nobody changes holds
    nothing per slot.
    """

    def __init__(self, base: int, rates: _Rates, start: int, stream: str) -> None:
        self.base = base
        self.slots = base
        self.time = -math.inf
        self._rates = rates
        self._changing = rates.active  # read on every request
        self._start = start
        self._stream = stream
        self._live: _LiveSet | None = None
        self._changed_at: array[int] | None = None  # epoch second of each slot's last change or arrival
        self._revision: array[int] | None = None  # changes so far, per slot
        self._days: list[tuple[int, int]] = []  # (slots, live) when each day began
        self._batch: list[_Event] = []  # the current day's events in time order
        self._applied = 0  # how many of them happened already
        self._touched = array("q")  # the slot of each event that changed something, in the order applied
        self._touched_dropped = 0  # how many of the oldest the log no longer holds

    @property
    def live_count(self) -> int:
        return self.slots if self._live is None else self._live.count

    @property
    def untouched(self) -> bool:
        """Nothing happened yet: every initial slot is live and unchanged, and none arrived."""
        return self._live is None and self._revision is None

    def is_live(self, slot: int) -> bool:
        return 0 <= slot < self.slots and (self._live is None or slot in self._live)

    @property
    def touches(self) -> int:
        """How many events changed something so far: a mark for `touched_since`."""
        return self._touched_dropped + len(self._touched)

    def touched_since(self, touches: int) -> set[int] | None:
        """The slots whose item changed, arrived or went since the mark `touches`; None when the
        log no longer reaches back that far."""
        first = touches - self._touched_dropped
        return None if first < 0 else set(self._touched[first:])

    def _touch(self, slot: int) -> None:
        self._touched.append(slot)
        # Bounded: once it holds more entries than the kind has slots, judging what it lists again
        # costs about what a new scan does, so its older half may go.
        if len(self._touched) > max(_TOUCH_LOG_FLOOR, 2 * self.slots):
            half = len(self._touched) // 2
            del self._touched[:half]
            self._touched_dropped += half

    def live_up_to(self, slot: int) -> int:
        """How many live slots are at or before `slot`."""
        return slot + 1 if self._live is None else self._live.live_before(slot + 1)

    def select(self, rank: int) -> int:
        return rank if self._live is None else self._live.select(rank)

    def history(self, slot: int) -> tuple[int, int | None]:
        """(revision, time of the last change or arrival), or (0, None) for an untouched initial item."""
        if self._revision is None or self._changed_at is None:
            return 0, None
        revision = self._revision[slot]
        return (revision, self._changed_at[slot]) if revision or slot >= self.base else (0, None)

    def advance(self, now: float) -> None:
        self.time = now
        if not self._changing:
            return
        while True:
            while self._applied < len(self._batch):
                event = self._batch[self._applied]
                if event.time > now:
                    return
                self._apply(event)
                self._applied += 1
            day = len(self._days)
            if self._start + day * DAY > now:
                return
            self._begin_day(day)

    def changed_since(self, epoch: float) -> Iterator[int]:
        """Live slots that changed or arrived at or after `epoch` (maybe repeated), from regenerated batches."""
        first_day = max(0, int((epoch - self._start) // DAY))
        for day in range(first_day, len(self._days)):
            slots, live = self._days[day]
            for event in self._changes(day, slots, live):
                if epoch <= event.time <= self.time and self.is_live(event.slot):
                    yield event.slot

    def _begin_day(self, day: int) -> None:
        self._days.append((self.slots, self.live_count))
        batch = self._changes(day, self.slots, self.live_count) + self._removals(day)
        batch.sort(key=lambda event: event.time)  # stable: arrivals keep their slot order
        self._batch, self._applied = batch, 0

    def _changes(self, day: int, slots: int, live: int) -> list[_Event]:
        """A day's changes and arrivals: a function of (day, slots, live) alone, so they can be regenerated."""
        day_start = self._start + day * DAY
        rng = _rng(self._stream, "churn", day)
        count = min(_batch_size(self._rates.churn * live, rng), slots)
        # Sampled among all slots; a change that lands on a removed item does nothing.
        events = [_Event(day_start + rng.randrange(DAY), "change", slot) for slot in rng.sample(range(slots), count)]
        rng = _rng(self._stream, "arrivals", day)
        count = _batch_size(self._rates.arrivals * live, rng)
        times = sorted(day_start + rng.randrange(DAY) for _ in range(count))
        return events + [_Event(moment, "arrive", slots + i) for i, moment in enumerate(times)]

    def _removals(self, day: int) -> list[_Event]:
        day_start = self._start + day * DAY
        rng = _rng(self._stream, "removals", day)
        count = min(_batch_size(self._rates.removals * self.live_count, rng), self.live_count)
        ranks = rng.sample(range(self.live_count), count)
        return [_Event(day_start + rng.randrange(DAY), "remove", self.select(rank)) for rank in ranks]

    def _apply(self, event: _Event) -> None:
        if event.action == "remove":
            if self._live is None:
                self._live = _LiveSet(self.slots)
            if event.slot in self._live:
                self._live.remove(event.slot)
                self._touch(event.slot)
            return
        changed_at, revision = self._history_arrays()
        if event.action == "arrive":
            changed_at.append(event.time)
            revision.append(0)
            if self._live is not None:
                self._live.append()
            self._touch(self.slots)  # the new slot
            self.slots += 1
        elif self.is_live(event.slot):
            changed_at[event.slot] = event.time
            revision[event.slot] += 1
            self._touch(event.slot)

    def _history_arrays(self) -> tuple[array[int], array[int]]:
        if self._changed_at is None or self._revision is None:
            self._changed_at = array("q", bytes(8 * self.slots))
            self._revision = array("I", bytes(4 * self.slots))
        return self._changed_at, self._revision


# --------------------------------------------------------------------------------------------
# Kinds: one "@type" each, with its numbering, timeline and extra items


@attrs.frozen
class _Extra:
    """A duplicate (same id as its anchor) or an item with an empty id, listed right after its anchor."""

    anchor: int
    empty_id: bool
    time: int  # its lastUpdate; extras never change


class _ItemState(NamedTuple):
    slot: int
    variant: _Variant
    last_update: int


_ID = re.compile(r"([A-Z]+)-(\d{7,})")


class _Kind:
    """The items of one "@type": numbering, content, initial times, timeline and extras.

    A position within the kind is (slot, extra): extra 0 is the item in that slot, extra n >= 1 the
    kind's n-th extra item (extras are sorted by anchor slot, so that order is the listing order).
    """

    def __init__(
        self,
        spec: InventorySpec,
        *,
        type_name: str,
        prefix: str,
        href: str,
        stream: str,
        base: int,
        numbering: _Numbering,
        body: Callable[[int, _Variant, bool], Item | str],  # (slot, variant, text): see _Content
        extras: list[_Extra],
    ) -> None:
        self.type_name = type_name
        self._spec = spec
        self._prefix = prefix
        self._href = href
        self._href_json = _json_str(href + "/")[:-1]  # the href's JSON text up to the id
        self._stream = stream
        self._base = base
        self._numbering = numbering
        self._id_format = f"{prefix}-%07d"  # an id is read per item of every page: formatted the short way
        self._body = body
        self._extras = extras
        self._anchors = [extra.anchor for extra in extras]
        self._initial = _InitialTimes(base, int(spec.start), _rng(stream, "initial"))
        self.timeline = self._new_timeline()

    def _new_timeline(self) -> _Timeline:
        rates = _Rates(self._spec.churn_per_day, self._spec.arrivals_per_day, self._spec.removals_per_day)
        return _Timeline(self._base, rates, int(self._spec.start), self._stream)

    def rewind(self) -> None:
        self.timeline = self._new_timeline()

    def item_id(self, slot: int) -> str:
        return self._id_format % self._numbering.number(slot)

    def id_at(self, slot: int, extra: int) -> str:
        return "" if extra and self._extras[extra - 1].empty_id else self.item_id(slot)

    # Positions (call under the inventory's lock) ---------------------------------------------

    def __len__(self) -> int:
        return self.timeline.live_count + len(self._extras)

    def _extra_position(self, extra: int) -> int:
        """Where the extra with this 0-based index is listed: after the live slots up to its anchor."""
        return self.timeline.live_up_to(self._anchors[extra]) + extra

    def key_at(self, position: int) -> tuple[int, int]:
        if not self._extras:
            return self.timeline.select(position), 0
        before = bisect.bisect_right(range(len(self._extras)), position, key=self._extra_position)
        if before and self._extra_position(before - 1) == position:
            return self._anchors[before - 1], before
        return self.timeline.select(position - before), 0

    def states_between(self, start: int, stop: int) -> list[_ItemState]:
        """The states of the items at positions start..stop-1 of the kind (within it)."""
        if not self._extras and self.timeline.untouched:  # the common case, short: the positions are the slots
            last_update = self._initial.of
            return [_ItemState(slot, _ORIGINAL, last_update(slot)) for slot in range(start, stop)]
        return [self.state(*self.key_at(position)) for position in range(start, stop)]

    def keys(self) -> Iterator[tuple[int, int]]:
        following = 0  # index of the next extra to list
        slot = 0
        while slot < self.timeline.slots:
            if self.timeline.is_live(slot):
                yield slot, 0
            while following < len(self._extras) and self._anchors[following] == slot:
                following += 1
                yield slot, following
            slot += 1

    def find(self, item_id: str) -> tuple[int, int] | None:
        """The first position holding that id: the live item, else its first duplicate."""
        if item_id == "":
            return next(((e.anchor, i) for i, e in enumerate(self._extras, 1) if e.empty_id), None)
        match = _ID.fullmatch(item_id)
        if not match or match[1] != self._prefix:
            return None
        slot = self._numbering.slot(int(match[2]))
        if slot is None or self.item_id(slot) != item_id:  # another type's number, or not the canonical spelling
            return None
        if self.timeline.is_live(slot):
            return slot, 0
        extra = bisect.bisect_left(self._anchors, slot)
        while extra < len(self._anchors) and self._anchors[extra] == slot:
            if not self._extras[extra].empty_id:
                return slot, extra + 1
            extra += 1
        return None

    def keys_of(self, item_id: str) -> list[tuple[int, int]]:
        """Every position holding `item_id`, in listing order: the live item, then its duplicates.

        They are listed one after the other: duplicates sit right after their anchor, before
        any empty-id item anchored there."""
        first = self.find(item_id) if item_id else None
        if first is None:
            return []
        slot = first[0]
        keys = [(slot, 0)] if self.timeline.is_live(slot) else []
        extra = bisect.bisect_left(self._anchors, slot)
        while extra < len(self._anchors) and self._anchors[extra] == slot:
            if not self._extras[extra].empty_id:
                keys.append((slot, extra + 1))
            extra += 1
        return keys

    def position(self, slot: int, extra: int) -> int:
        """Where the item at (slot, extra) is listed within the kind: the inverse of `key_at`."""
        if extra:
            return self._extra_position(extra - 1)
        return self.timeline.live_up_to(slot) - 1 + bisect.bisect_left(self._anchors, slot)

    def changed_since(self, epoch: float) -> list[tuple[int, int]]:
        slots = set(self.timeline.changed_since(epoch))
        slots.update(slot for slot in self._initial.slots_since(epoch) if self.timeline.is_live(slot))
        keys = [(slot, 0) for slot in slots]
        keys += [(e.anchor, i) for i, e in enumerate(self._extras, 1) if e.time >= epoch]
        return sorted(keys)

    def state(self, slot: int, extra: int) -> _ItemState:
        if extra:
            copy = self._extras[extra - 1]
            return _ItemState(slot, _Variant(copy=extra, empty_id=copy.empty_id), copy.time)
        revision, changed_at = self.timeline.history(slot)
        last_update = self._initial.of(slot) if changed_at is None else changed_at
        return _ItemState(slot, _Variant(revision=revision) if revision else _ORIGINAL, last_update)

    # Building (no lock needed) ---------------------------------------------------------------

    def build(self, state: _ItemState, href: str | None = None) -> Item:
        """The item; `href`, when given, replaces the kind's collection URL in the item's own href."""
        item_id = "" if state.variant.empty_id else self.item_id(state.slot)
        item: Item = {"id": item_id, "href": f"{self._href if href is None else href}/{item_id}"}
        body = self._body(state.slot, state.variant, False)
        assert isinstance(body, dict)
        item.update(body)
        item["lastUpdate"] = iso_utc(state.last_update)
        return item

    def build_json(self, states: Sequence[_ItemState], href_json: str | None = None) -> list[str]:
        """The JSON text of `build`'s item for each state, as ``json.dumps(item, separators=(",", ":"))``
        writes it, without the dict (a page's worth at a time: what they share is looked up once).

        `href_json` is the JSON text of another collection URL plus "/", without its closing quote."""
        body, id_format, number = self._body, self._id_format, self._numbering.number
        href_json = self._href_json if href_json is None else href_json
        texts = []
        for slot, variant, last_update in states:
            item_id = "" if variant.empty_id else id_format % number(slot)
            texts.append(f'{{"id":"{item_id}","href":{href_json}{item_id}",{body(slot, variant, True)},"lastUpdate":"{iso_utc(last_update)}"}}')
        return texts


def _place_extras(spec: InventorySpec, collection: str, bases: Sequence[int]) -> list[list[_Extra]]:
    """The duplicate and empty-id items of one collection, per kind, anchored at seeded initial items."""
    per_kind: list[list[_Extra]] = [[] for _ in bases]
    total = sum(bases)
    if not total:
        return per_kind  # nothing to repeat or to sit next to
    starts = [sum(bases[:i]) for i in range(len(bases))]
    wanted = [(False, j) for j in range(spec.duplicate_ids)] + [(True, j) for j in range(spec.empty_ids)]
    for empty_id, j in wanted:
        rng = _rng(spec.seed, collection, "empty" if empty_id else "duplicate", j)
        position = rng.randrange(total)
        kind = bisect.bisect_right(starts, position) - 1
        moment = int(spec.start) - YEAR + rng.randrange(YEAR)
        per_kind[kind].append(_Extra(position - starts[kind], empty_id, moment))
    for extras in per_kind:
        extras.sort(key=lambda extra: extra.anchor)  # stable: duplicates first, in seeded order
    return per_kind


# --------------------------------------------------------------------------------------------
# Collections


_Key = tuple[_Kind, int, int]  # (kind, slot, extra)
Marks = tuple[tuple[_Kind, _Timeline, int], ...]  # per kind: its timeline and how many touches it had (`Collection.marks`)


class Collection(abc.ABC):
    """An ordered, read-only view of inventory items, each built (a fresh dict) when asked for.

    The order is by (kind, slot, copy): unique and stable, so offset paging over an unchanged
    collection never repeats or skips. Items removed or arriving between pages shift positions,
    as on a real server.
    """

    _item_href: str | None = None  # set by `with_item_href`
    _item_href_json: str | None = None
    _kinds: tuple[_Kind, ...]

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock

    @property
    def marks(self) -> Marks:
        """How far time went for each of this view's kinds: equal marks, equal items. For `where`'s `update`."""
        with self._lock:
            return tuple((kind, kind.timeline, kind.timeline.touches) for kind in self._kinds)

    def where(self, predicate: Callable[[Item], bool], *, update: tuple[Collection, Marks] | None = None) -> Collection:
        """The items `predicate` accepts, in the same order, as a fixed view.

        One pass that builds every item: for filters the views cannot answer by arithmetic,
        made once and then paged through at the cost of the page. With `update`, an earlier
        `where` of a view of the same kinds with the same predicate and that view's `marks`
        then, only the items time touched since are built and judged again (the others have
        not changed): the cost is those items plus a pass over the keys. When time went back
        (an inventory replays from the start) the marks do not fit, and it is one pass again."""
        if update is not None:
            updated = self._updated_where(predicate, *update)
            if updated is not None:
                return updated
        with self._lock:
            keys = list(self._keys())
        return self._same_hrefs(_FixedCollection(self._accepted(keys, predicate), self._kinds, self._lock))

    def _accepted(self, keys: Iterable[_Key], predicate: Callable[[Item], bool]) -> list[_Key]:
        accepted = []
        for key in keys:
            kind, slot, extra = key
            with self._lock:
                if not kind.timeline.is_live(slot) and not extra:  # gone since the keys were taken
                    continue
                state = kind.state(slot, extra)
            if predicate(kind.build(state, self._item_href)):
                accepted.append(key)
        return accepted

    def _updated_where(self, predicate: Callable[[Item], bool], earlier: Collection, marks: Marks) -> Collection | None:
        if not isinstance(earlier, _FixedCollection) or [mark[0] for mark in marks] != list(self._kinds):
            return None
        touched: dict[int, set[int]] = {}  # per kind (by id): its slots touched since the marks
        with self._lock:
            for kind, timeline, touches in marks:
                since = timeline.touched_since(touches) if kind.timeline is timeline else None  # not: rewound
                if since is None:  # rewound, or too much happened since: scan again
                    return None
                touched[id(kind)] = since
        order = {id(kind): index for index, kind in enumerate(self._kinds)}
        kept = [key for key in earlier._key_list if key[2] or key[1] not in touched[id(key[0])]]  # extras never change
        judged = self._accepted(sorted(((kind, slot, 0) for kind in self._kinds for slot in touched[id(kind)]), key=lambda key: (order[id(key[0])], key[1])), predicate)
        keys = list(heapq.merge(kept, judged, key=lambda key: (order[id(key[0])], key[1], key[2])))
        return self._same_hrefs(_FixedCollection(keys, self._kinds, self._lock))

    def with_item_href(self, collection_url: str) -> Collection:
        """The same view, each item's own href under `collection_url` (``<url>/<id>``).

        For a server that serves the items at another path too (SES's): the references inside
        items keep pointing where the inventory's `href_base` put them."""
        view = copy.copy(self)
        view._item_href = collection_url.rstrip("/")
        view._item_href_json = _json_str(view._item_href + "/")[:-1]
        return view

    def _same_hrefs(self, view: Collection) -> Collection:
        """`view` (derived from this one) with this one's item hrefs."""
        return view if self._item_href is None else view.with_item_href(self._item_href)

    def span(self, item_id: str) -> tuple[int, int] | None:
        """Where the items with id `item_id` are listed in this view: (index of the first, how many).

        They are consecutive (an original and its duplicates). A count of 0 means the inventory
        has the item but this view leaves it out (an `updated_since` view: it was not updated
        since); the index is then where it would be listed. None when none of this view's kinds
        has a live item with that id."""
        with self._lock:
            return self._span(item_id)

    @abc.abstractmethod
    def _span(self, item_id: str) -> tuple[int, int] | None: ...

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def _key_at(self, index: int) -> _Key:
        """The key at a valid index (under the lock)."""

    def _states_between(self, start: int, stop: int) -> list[tuple[_Kind, list[_ItemState]]]:
        """The states at indexes start..stop-1, clipped to the collection, in runs of one kind (under the lock)."""
        runs: list[tuple[_Kind, list[_ItemState]]] = []
        for index in range(max(0, start), min(stop, len(self))):
            kind, slot, extra = self._key_at(index)
            if not runs or runs[-1][0] is not kind:
                runs.append((kind, []))
            runs[-1][1].append(kind.state(slot, extra))
        return runs

    @abc.abstractmethod
    def _first_key(self, item_id: str) -> _Key | None:
        """The key of the first item with that id (under the lock)."""

    @abc.abstractmethod
    def _keys(self) -> Iterator[_Key]: ...

    @abc.abstractmethod
    def of_type(self, type_name: str) -> Collection:
        """The items whose "@type" is `type_name` ("element": the carriers), in the same order."""

    @abc.abstractmethod
    def updated_since(self, epoch: float) -> Collection:
        """The items whose lastUpdate is at or after `epoch`, in the same order."""

    def at(self, index: int) -> Item:
        with self._lock:
            if not 0 <= index < len(self):
                raise IndexError(f"index {index} outside a collection of {len(self)} items")
            kind, slot, extra = self._key_at(index)
            state = kind.state(slot, extra)
        return kind.build(state, self._item_href)

    def json_slice(self, start: int, stop: int) -> list[str]:
        """The items at indexes start..stop-1 (clipped to the collection) as JSON text.

        Each is exactly ``json.dumps(self.at(index), separators=(",", ":"))``, written without
        building the dict: what a server sends for a page.
        """
        with self._lock:
            runs = self._states_between(start, stop)
        return [text for kind, states in runs for text in kind.build_json(states, self._item_href_json)]

    def get(self, item_id: str) -> Item | None:
        with self._lock:
            key = self._first_key(item_id)
            if key is None:
                return None
            kind, slot, extra = key
            state = kind.state(slot, extra)
        return kind.build(state, self._item_href)

    def __iter__(self) -> Iterator[Item]:
        for kind, slot, extra in self._keys():
            with self._lock:
                state = kind.state(slot, extra)
            yield kind.build(state, self._item_href)


class _LiveCollection(Collection):
    """Kinds listed one after the other, as they are now."""

    def __init__(self, kinds: Sequence[_Kind], lock: threading.RLock) -> None:
        super().__init__(lock)
        self._kinds = tuple(kinds)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(kind) for kind in self._kinds)

    def _key_at(self, index: int) -> _Key:
        for kind in self._kinds:
            if index < len(kind):
                return (kind, *kind.key_at(index))
            index -= len(kind)
        raise IndexError(index)

    def _states_between(self, start: int, stop: int) -> list[tuple[_Kind, list[_ItemState]]]:
        runs = []
        for kind in self._kinds:  # start and stop count from this kind's first item
            size = len(kind)
            if start < size and stop > 0:
                runs.append((kind, kind.states_between(max(0, start), min(stop, size))))
            start, stop = start - size, stop - size
        return runs

    def _first_key(self, item_id: str) -> _Key | None:
        for kind in self._kinds:
            found = kind.find(item_id)
            if found is not None:
                return (kind, *found)
        return None

    def _span(self, item_id: str) -> tuple[int, int] | None:
        offset = 0
        for kind in self._kinds:
            keys = kind.keys_of(item_id)
            if keys:
                return offset + kind.position(*keys[0]), len(keys)
            offset += len(kind)
        return None

    def _keys(self) -> Iterator[_Key]:
        for kind in self._kinds:
            for slot, extra in kind.keys():
                yield kind, slot, extra

    def of_type(self, type_name: str) -> Collection:
        return self._same_hrefs(_LiveCollection([kind for kind in self._kinds if kind.type_name == type_name], self._lock))

    def updated_since(self, epoch: float) -> Collection:
        with self._lock:
            keys = [(kind, slot, extra) for kind in self._kinds for slot, extra in kind.changed_since(epoch)]
        return self._same_hrefs(_FixedCollection(keys, self._kinds, self._lock))


class _FixedCollection(Collection):
    """A fixed list of keys (what `updated_since` found); items are built with their content at access time."""

    def __init__(self, keys: list[_Key], kinds: Sequence[_Kind], lock: threading.RLock) -> None:
        super().__init__(lock)
        self._key_list = keys  # in listing order: by kind (in `kinds` order), slot, extra
        self._kinds = tuple(kinds)
        self._kind_order = {id(kind): index for index, kind in enumerate(self._kinds)}
        self._first_index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._key_list)

    def _key_at(self, index: int) -> _Key:
        return self._key_list[index]

    def _first_key(self, item_id: str) -> _Key | None:
        if self._first_index is None:
            self._first_index = {}
            for index, (kind, slot, extra) in enumerate(self._key_list):
                self._first_index.setdefault(kind.id_at(slot, extra), index)
        index = self._first_index.get(item_id)
        return None if index is None else self._key_list[index]

    def _span(self, item_id: str) -> tuple[int, int] | None:
        for kind in self._kinds:
            keys = kind.keys_of(item_id)
            if keys:
                wanted = {(kind, slot, extra) for slot, extra in keys}
                order = self._kind_order[id(kind)]
                index = bisect.bisect_left(self._key_list, (order, *keys[0]), key=lambda key: (self._kind_order[id(key[0])], key[1], key[2]))
                count = 0
                while index + count < len(self._key_list) and self._key_list[index + count] in wanted:
                    count += 1
                return index, count
        return None

    def _keys(self) -> Iterator[_Key]:
        return iter(self._key_list)

    def of_type(self, type_name: str) -> Collection:
        kinds = [kind for kind in self._kinds if kind.type_name == type_name]
        return self._same_hrefs(_FixedCollection([key for key in self._key_list if key[0].type_name == type_name], kinds, self._lock))

    def updated_since(self, epoch: float) -> Collection:
        with self._lock:
            keys = [(kind, slot, extra) for kind, slot, extra in self._key_list if kind.state(slot, extra).last_update >= epoch]
        return self._same_hrefs(_FixedCollection(keys, self._kinds, self._lock))


# --------------------------------------------------------------------------------------------
# The inventory


class Inventory:
    """A satellite operator's inventory as the simulated clock `now` (epoch seconds) sees it.

    ``services`` is the TMF638 collection (customer-facing services, then carriers with
    ``"@type": "element"``), ``resources`` the TMF639 one. Reading either applies the simulated
    days up to ``now()``; the returned view then reads that state (take a fresh one per request).
    A clock before ``spec.start`` sees the initial inventory. `href_base` (e.g. the server's
    ``http://127.0.0.1:8080``) prefixes every href; by default hrefs are paths. Safe to use from
    several threads.
    """

    def __init__(self, spec: InventorySpec, now: Callable[[], float], *, href_base: str = "") -> None:
        self.spec = spec
        self._now = now
        self._lock = threading.RLock()
        self._time = -math.inf
        href_base = href_base.rstrip("/")
        content = _Content(spec, href_base)
        service_extras = _place_extras(spec, "services", (spec.services, spec.carriers))
        self._service_kinds = (
            _Kind(
                spec,
                type_name="CustomerFacingService",
                prefix="SVC",
                href=href_base + SERVICE_PATH,
                stream=f"{spec.seed}:service",
                base=spec.services,
                numbering=_SEQUENTIAL,
                body=content.service,
                extras=service_extras[0],
            ),
            _Kind(
                spec,
                type_name="element",
                prefix="CAR",
                href=href_base + SERVICE_PATH,
                stream=f"{spec.seed}:carrier",
                base=spec.carriers,
                numbering=_SEQUENTIAL,
                body=content.carrier,
                extras=service_extras[1],
            ),
        )
        resource_bases = [content.resource_counts[kind.name] for kind in RESOURCE_TYPES]
        resource_extras = _place_extras(spec, "resources", resource_bases)
        self._resource_kinds = tuple(
            _Kind(
                spec,
                type_name=kind.name,
                prefix="RES",
                href=href_base + RESOURCE_PATH,
                stream=f"{spec.seed}:resource:{kind.name}",
                base=resource_bases[i],
                numbering=_ByResourceType(content.pattern, i),
                body=functools.partial(content.resource, i),
                extras=resource_extras[i],
            )
            for i, kind in enumerate(RESOURCE_TYPES)
        )

    @property
    def services(self) -> Collection:
        self._catch_up()
        return _LiveCollection(self._service_kinds, self._lock)

    @property
    def resources(self) -> Collection:
        self._catch_up()
        return _LiveCollection(self._resource_kinds, self._lock)

    def _catch_up(self) -> None:
        now = self._now()
        with self._lock:
            if now < self._time:  # the clock went back: replay from the start
                for kind in (*self._service_kinds, *self._resource_kinds):
                    kind.rewind()
            self._time = now
            for kind in (*self._service_kinds, *self._resource_kinds):
                kind.timeline.advance(now)
