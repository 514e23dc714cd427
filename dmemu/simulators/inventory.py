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
  draw it (`words`), so item i never needs items 0..i-1 and nothing is held per item
  until time changes it. Daily batches draw from ``random.Random`` streams of their own.
  Cross-references are arithmetic (a Port sits in Card ``k % cards``, a Transponder on Satellite
  ``k % satellites``) or drawn from the item's words (a service rests on a carrier and, one in
  four, on an earlier one of the first 1,024 services: ``supportingService`` and
  ``serviceRelationship``; carriers come in pairs) and point at items of the initial inventory (they may dangle after removals, as real
  ones do).
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
  for a page (see `items._Content`).
* **hrefs.** ``Inventory(..., href_base="http://host:port")`` prefixes every href (items and the
  references inside them) with the server's base URL, making them absolute URIs; the default ""
  gives paths such as ``/tmf-api/serviceInventory/v4/service/SVC-0000001``. A server that serves the
  same items at another path (SES's) takes ``collection.with_item_href(url)``: the items' own hrefs
  move there, the references inside them stay.
* **Extension.** ``lastUpdate`` (ISO 8601 UTC, second precision, ``Z``) is a vendor extension:
  TMF638/639 v4 have no last-update field, SES adds its own and servers filter on it.

The rooms, each importing only those listed before it:

* `clock` (shared with the other simulators): ``DAY``, ``YEAR`` and `iso_utc`.
* `spec`: `InventorySpec`, what to generate.
* `words`: the random numbers (BLAKE2b words per item, seeded streams per batch).
* `world`: the operator's customers, offerings, teleports, fleet, bands and resource types.
* `numbering`: slots and the numbers in ids.
* `items`: item bodies, as dicts or as JSON text.
* `timeline`: initial lastUpdate values and the daily batches of churn.
* `kinds`: the items of one "@type": numbering, content, timeline and extras together.
* `views`: `Collection`, the ordered views the servers page through.
* this module: `Inventory`, which assembles the kinds, and the public names.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable

from .clock import DAY, iso_utc
from .items import RESOURCE_PATH, SERVICE_PATH, _Content
from .kinds import _Kind, _place_extras
from .numbering import _SEQUENTIAL, _ByResourceType
from .spec import DEFAULT_START, InventorySpec
from .timeline import _LiveSet as _LiveSet  # for the tests that reach into the generator
from .views import Collection, _LiveCollection
from .world import RESOURCE_TYPES

__all__ = ["DAY", "DEFAULT_START", "RESOURCE_PATH", "RESOURCE_TYPES", "SERVICE_PATH", "Collection", "Inventory", "InventorySpec", "iso_utc"]



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
