"""Item bodies as pure functions of (seed, kind, number, variant): services, carriers, resources.

`_Content` draws each item's values from its own words and writes either the dict or, for
pages, the JSON text directly, around text built once per service profile (customer and
offering) and per teleport.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any, NamedTuple

import attrs

from .clock import DAY, YEAR, iso_utc
from .numbering import _SEQUENTIAL, _ResourcePattern
from .spec import InventorySpec
from .words import _Stream, _words
from .world import (
    _ADMINISTRATIVE_STATES,
    _BAND_NAMES,
    _CHANGE_NOTES,
    _CONTRACT_YEARS,
    _ELEMENT_TYPES,
    _MIR_MULTIPLIERS,
    _MODULATIONS,
    _SERVICE_LEVELS,
    _STARTED_STATES,
    _TYPE_INDEX,
    BANDS,
    CUSTOMERS,
    FLEET,
    OFFERINGS,
    OPERATOR,
    RESOURCE_STATUSES,
    RESOURCE_TYPES,
    SERVICE_STATES,
    TELEPORTS,
    _Band,
    _Offering,
    _Party,
    _Satellite,
    _Teleport,
)

SERVICE_PATH = "/tmf-api/serviceInventory/v4/service"
RESOURCE_PATH = "/tmf-api/resourceInventoryManagement/v4/resource"
_ORGANIZATION_PATH = "/tmf-api/party/v4/organization"
_SITE_PATH = "/tmf-api/geographicSiteManagement/v4/geographicSite"
_SERVICE_SPECIFICATION_PATH = "/tmf-api/serviceCatalogManagement/v4/serviceSpecification"
_RESOURCE_SPECIFICATION_PATH = "/tmf-api/resourceCatalog/v4/resourceSpecification"

Item = dict[str, Any]


_VALUE_TYPES = {bool: "boolean", int: "number", float: "number", str: "string"}


def _value_type(value: object) -> str:
    found = _VALUE_TYPES.get(type(value))
    if found is not None:
        return found
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, (int, float)) else "string"


def _short(reference: Item) -> Item:
    """A reference as a relationship carries it: id and href."""
    return {"id": reference["id"], "href": reference["href"]}


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


class _CarrierRef(NamedTuple):
    """A carrier as services resting on it name it."""

    reference: _Fixed  # in supportingService: id, href, name, @referredType
    short: _Fixed  # in a serviceRelationship: id and href (all a ServiceRefOrValue needs; pages stay small)
    relationship_json: str  # its {"relationshipType":"reliesOn","service":...}
    resting_json: str  # the members "supportingService" and "serviceRelationship" of a service on it alone


class _ServiceSite(NamedTuple):
    """A teleport as a service's description and place name it, built once per teleport."""

    teleport: _Teleport
    place: _Fixed
    description_json: str  # " Mbps CIR via <teleport>" as JSON string content (no quotes)


_START_SPAN = 6 * YEAR - 30 * DAY  # a service started 30 days to 6 years before the start
_CREATION_SPAN = 83 * DAY  # and was created 7 to 90 days before it started
_CARRIER_REFS_KEPT = 4096  # carrier references kept at most (a few per page are new)
_UNDERLYING_SERVICES = 1024  # services others rest on are among the first this many (their references are kept)
_PAIRED_JSON = '{"relationshipType":"isPairedWith","service":'  # a carrier's relationship to its partner, up to the reference

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
        self._carriers = spec.carriers
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
        self._carrier_refs: dict[int, _CarrierRef] = {}  # see _carrier
        # The JSON references (full, and short for a relationship) of services others rest on: see _resting_json.
        self._underlying_refs: dict[int, tuple[str, str]] = {}
        self._underlying_count = min(spec.services, _UNDERLYING_SERVICES)
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

    def _carrier(self, slot: int) -> _CarrierRef:
        """A carrier of the initial inventory as a reference, with the JSON text services resting on it
        write: kept, as services refer to carriers all the time (up to a bound: nothing is held per item
        of a million carriers)."""
        found = self._carrier_refs.get(slot)
        if found is None:
            if len(self._carrier_refs) >= _CARRIER_REFS_KEPT:
                self._carrier_refs.clear()
            reference = self._reference(SERVICE_PATH, f"CAR-{_SEQUENTIAL.number(slot):07d}", self._carrier_name(slot), "Service")
            text = _dumps(reference)
            short = {"id": reference["id"], "href": reference["href"]}
            short_text = _dumps(short)
            relationship = f'{{"relationshipType":"reliesOn","service":{short_text}}}'
            resting = f'"supportingService":[{text}],"serviceRelationship":[{relationship}],'
            found = self._carrier_refs[slot] = _CarrierRef(_Fixed(reference, text), _Fixed(short, short_text), relationship, resting)
        return found

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
        started = self._start - (30 * DAY + w_start % _START_SPAN)
        created = started - (7 * DAY + w_created % _CREATION_SPAN)
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
        # What it rests on, from the words' parts the draws above leave: a carrier, and for one service in
        # four an earlier one of the first services (so no service rests on itself, even roundabout).
        carrier = w_start // _START_SPAN % self._carriers if self._carriers else None
        resting = w_created // _CREATION_SPAN
        underlying = resting // 4 % min(slot, self._underlying_count) if resting % 4 == 0 and slot else None
        if variant is _ORIGINAL or variant == _ORIGINAL:
            state, note = SERVICE_STATES.at(state_word), ""
        else:
            changes = self._variant_stream("service", slot, variant)
            state = SERVICE_STATES.draw(changes)
            note = self._describe("", variant, changes)
        if text:
            # On a carrier alone (three services in four): that carrier's ready text, once it was built.
            alone_on = None if underlying is not None or carrier is None else self._carrier_refs.get(carrier)
            return (
                f'{profile.name_json}{slot + 1}{profile.description_json}{cir}{site.description_json}{_json_str(note)[1:-1] if note else ""}",'
                f'{profile.type_json}{_SERVICE_STATE_JSON[state]}'
                f'"serviceDate":"{iso_utc(created)}","startDate":"{iso_utc(started)}","endDate":"{iso_utc(ends)}",'
                f'{profile.related_json}{site.place.text}{profile.specification_json}'
                f'{",".join([self._resource_ref_json(*resource) for resource in resources])}],'
                f'{self._resting_json(carrier, underlying) if alone_on is None else alone_on.resting_json}'
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
            "supportingService": [
                *([] if carrier is None else [self._carrier(carrier).reference.fresh()]),
                *([] if underlying is None else [self._service_ref(underlying)]),
            ],
            "serviceRelationship": [
                *([] if carrier is None else [{"relationshipType": "reliesOn", "service": self._carrier(carrier).short.fresh()}]),
                *([] if underlying is None else [{"relationshipType": "reliesOn", "service": _short(self._service_ref(underlying))}]),
            ],
            "serviceCharacteristic": _characteristics(
                [
                    ("CommittedInformationRateMbps", cir),
                    ("MaximumInformationRateMbps", maximum),
                    ("ServiceLevel", level),
                    ("ContractNumber", contract),
                ]
            ),
        }

    def _carrier_transponder(self, slot: int) -> tuple[_Stream, int | None, _Transponder]:
        """A carrier's stream after its first draw, the transponder resource it picked (if any), and its transponder."""
        rng = _Stream(f"{self._seed}:carrier:{slot}")
        transponder_slot = self._pick(rng, "Transponder")
        # Without transponder resources the carrier still needs a frequency plan: a notional transponder.
        return rng, transponder_slot, self._transponder(slot if transponder_slot is None else transponder_slot)

    def _carrier_name(self, slot: int) -> str:
        transponder = self._carrier_transponder(slot)[2]
        return f"{self._satellite_name(transponder.satellite_slot)} {transponder.label} CXR {slot + 1}"

    def _partner_carrier(self, slot: int) -> int | None:
        """The carrier of the initial inventory paired with this one (forward and return): 0 and 1, 2 and 3, ...;
        an odd one out pairs with the one before it, an arrival with one of the initial carriers."""
        partner = slot ^ 1
        if partner >= self._carriers:
            partner = slot - 1 if slot < self._carriers else slot % self._carriers
        return partner if 0 <= partner != slot else None

    def _resting_json(self, carrier: int | None, underlying: int | None) -> str:
        """The members "supportingService" and "serviceRelationship" of a service (with a trailing comma)."""
        if underlying is None:
            return '"supportingService":[],"serviceRelationship":[],' if carrier is None else self._carrier(carrier).resting_json
        kept = self._underlying_refs.get(underlying)
        if kept is None:
            kept = self._underlying_refs[underlying] = (self._service_ref_json(underlying), _dumps(_short(self._service_ref(underlying))))
        reference, short_text = kept
        relationship = f'{{"relationshipType":"reliesOn","service":{short_text}}}'
        if carrier is None:
            return f'"supportingService":[{reference}],"serviceRelationship":[{relationship}],'
        on_carrier = self._carrier(carrier)
        return f'"supportingService":[{on_carrier.reference.text},{reference}],"serviceRelationship":[{on_carrier.relationship_json},{relationship}],'

    def carrier(self, slot: int, variant: _Variant, text: bool = False) -> Item | str:
        rng, transponder_slot, transponder = self._carrier_transponder(slot)
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
        partner = self._partner_carrier(slot)
        partner_ref = None if partner is None else self._carrier(partner)
        if text:
            return (
                f'"name":{_json_str(name)},"description":{_json_str(description)},"category":"RFS","@type":"element","serviceType":"Carrier",'
                f'"state":"{state}","hasStarted":{_JSON_BOOL[state in _STARTED_STATES]},"isServiceEnabled":{_JSON_BOOL[state == "active"]},'
                f'"serviceDate":"{iso_utc(created)}","startDate":"{iso_utc(began)}","relatedParty":[{party.text}],"place":[{place.text}],'
                f'"serviceSpecification":{specification.text},'
                f'"supportingResource":[{",".join([self._resource_ref_json(*resource) for resource in resources])}],'
                f'"supportingService":[{",".join([self._service_ref_json(service) for service in services])}],'
                f'"serviceRelationship":[{"" if partner_ref is None else f"{_PAIRED_JSON}{partner_ref.short.text}}}"}],'
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
            "serviceRelationship": [] if partner_ref is None else [{"relationshipType": "isPairedWith", "service": partner_ref.short.fresh()}],
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
