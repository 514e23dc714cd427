"""SES Inventory Management against the real simulator over loopback, on a virtual clock."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from dmemu.dms import DataMinerSystem
from dmemu.elements import ses_inventory
from dmemu.elements.ses_inventory import (
    COMPLETE,
    INCOMPLETE,
    SesInventoryManagement,
    carrier_row,
    resource_row,
    service_row,
)
from dmemu.protocol import NO_RETRIES, Connection, Element, InvalidValueError, LogType, VirtualClock, expect
from dmemu.simulators.faults import Fault
from dmemu.simulators.inventory import DAY, InventorySpec
from dmemu.simulators.server import SES_BASE, Simulators

CREDENTIALS = {"tmf638": ("svc-user", "svc-secret-638"), "tmf639": ("res-user", "res-secret-639")}
SPEC = InventorySpec(services=700, carriers=150, resources=500, seed=11)
HOUR = 3600
START = 1_767_225_600  # the virtual clock's start, 2026-01-01 00:00:00 UTC

# The plugin's `simulators` fixture serves SPEC behind these credentials; a test's own marker
# replaces the spec only (markers merge keyword by keyword).
pytestmark = pytest.mark.dmemu_simulators(spec=SPEC, credentials=CREDENTIALS)


# --------------------------------------------------------------------------------------------
# Helpers


def settings(sim: Simulators, **overrides: Any) -> dict[str, Any]:
    values = {
        "TMF 638 Username": CREDENTIALS["tmf638"][0],
        "TMF 638 Password": CREDENTIALS["tmf638"][1],
        "TMF 639 Endpoint": f"{sim.base_url}{SES_BASE}/tmf639",
        "TMF 639 Username": CREDENTIALS["tmf639"][0],
        "TMF 639 Password": CREDENTIALS["tmf639"][1],
    }
    values.update(overrides)
    return values


def connection(sim: Simulators, **overrides: Any) -> Connection:
    port = int(sim.base_url.rsplit(":", 1)[1])
    return Connection(host="127.0.0.1", port=port, bus_address="BypassProxy", **overrides)


def create(dms: DataMinerSystem, sim: Simulators, name: str = "Inventory", conn: Connection | None = None, **overrides: Any) -> Element:
    return dms.create_element(
        SesInventoryManagement, name, connection=conn or connection(sim), parameters=settings(sim, **overrides)
    )


def upstream(sim: Simulators, api: str) -> list[dict]:
    """Every item the simulator lists now (edits included), read over HTTP at its TMF v4 path."""
    items: list[dict] = []
    with requests.Session() as http:
        http.trust_env = False
        while True:
            response = http.get(sim.url(api), params={"offset": len(items), "limit": 1000}, auth=CREDENTIALS[api])
            response.raise_for_status()
            page = response.json()
            items += page
            if len(items) >= int(response.headers["X-Total-Count"]) or not page:
                return items


# What each column shows, written out from the connector's help page (which TMF attribute goes in
# which column, and how a nested value reads), independently of the connector's own row functions.


def shown(value: Any) -> str:
    """A plain value as a cell shows it: text as it is, a number or a boolean as JSON writes it."""
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def names(references: list[dict]) -> str:
    """References by name (else id): ``a; b``."""
    return "; ".join(reference.get("name") or reference["id"] for reference in references)


def by_role(references: list[dict]) -> str:
    """Parties and places: ``role: name; ...``."""
    return "; ".join(f"{r['role']}: {r['name']}" if r.get("role") else r["name"] for r in references)


def characteristics(values: list[dict]) -> str:
    """Characteristics: ``name=value; ...``."""
    return "; ".join(f"{value['name']}={shown(value['value'])}" for value in values)


def specification(value: dict | None) -> str:
    """A specification's name, with ``v<version>`` when it has one."""
    if not value:
        return ""
    return f"{value['name']} v{value['version']}" if value.get("version") else value["name"]


def kind(item: dict) -> str:
    return item.get("serviceType") or item["@type"]


SERVICE_COLUMNS: dict[str, Callable[[dict], str]] = {
    "External ID": lambda item: item["id"],
    "Name": lambda item: shown(item.get("name")),
    "Description": lambda item: shown(item.get("description")),
    "Status": lambda item: item["state"],
    "Type": kind,
    "Start Date": lambda item: shown(item.get("startDate")),
    "End Date": lambda item: shown(item.get("endDate")),
    "Last Update": lambda item: item["lastUpdate"],
    "Related Party": lambda item: by_role(item.get("relatedParty", [])),
    "Location": lambda item: by_role(item.get("place", [])),
    "Service Specification": lambda item: specification(item.get("serviceSpecification")),
    "Supporting Resources": lambda item: names(item.get("supportingResource", [])),
}
CARRIER_COLUMNS: dict[str, Callable[[dict], str]] = {
    "External ID": lambda item: item["id"],
    "Name": lambda item: shown(item.get("name")),
    "Description": lambda item: shown(item.get("description")),
    "Status": lambda item: item["state"],
    "Type": kind,
    "Creation Date": lambda item: shown(item.get("serviceDate")),  # when the carrier was made, not when it started
    "Last Update": lambda item: item["lastUpdate"],
    "Service Characteristics": lambda item: characteristics(item.get("serviceCharacteristic", [])),
    "Supporting Services": lambda item: names(item.get("supportingService", [])),
}
RESOURCE_COLUMNS: dict[str, Callable[[dict], str]] = {
    "External ID": lambda item: item["id"],
    "Name": lambda item: shown(item.get("name")),
    "Description": lambda item: shown(item.get("description")),
    "Status": lambda item: item["resourceStatus"],
    "Type": lambda item: item.get("@type") or item["category"],
    "Resource Specification": lambda item: specification(item.get("resourceSpecification")),
    "Resource Characteristics": lambda item: characteristics(item.get("resourceCharacteristic", [])),
    "Related Parties": lambda item: by_role(item.get("relatedParty", [])),
    "Locations": lambda item: by_role([item["place"]] if item.get("place") else []),  # one object in v4
    "Resource Relationships": lambda item: "; ".join(
        f"{r['relationshipType']}: {r['resource'].get('name') or r['resource']['id']}" for r in item.get("resourceRelationship", [])
    ),
}


def row_of(columns: dict[str, Callable[[dict], str]], item: dict) -> dict[str, str]:
    return {column: cell(item) for column, cell in columns.items()}


def expected_tables(sim: Simulators, *, active_only: bool = True) -> dict[str, dict[str, dict[str, str]]]:
    """The rows each table should hold: the first item of each non-empty id, of the table's kind."""
    tables: dict[str, dict[str, dict[str, str] | None]] = {"Services": {}, "Carriers": {}, "Resources": {}}
    for item in upstream(sim, "tmf638"):
        carrier = item["@type"] == "element"
        table, columns = ("Carriers", CARRIER_COLUMNS) if carrier else ("Services", SERVICE_COLUMNS)
        if item["id"] and item["id"] not in tables["Services"] and item["id"] not in tables["Carriers"]:
            if not active_only or item["state"] == "active":
                tables[table][item["id"]] = row_of(columns, item)
            else:
                tables[table].setdefault(item["id"], None)  # taken: a later duplicate is not kept
    for item in upstream(sim, "tmf639"):
        if item["id"] and item["id"] not in tables["Resources"]:
            keep = not active_only or item["resourceStatus"] == "available"
            tables["Resources"][item["id"]] = row_of(RESOURCE_COLUMNS, item) if keep else None
    return {name: {key: row for key, row in rows.items() if row is not None} for name, rows in tables.items()}


def assert_tables_match(element: Element, sim: Simulators, *, active_only: bool = True) -> None:
    """Every table holds exactly the simulator's (active) items, each cell the attribute its column shows."""
    for table, expected in expected_tables(sim, active_only=active_only).items():
        view = element.table(table)
        assert sorted(view.keys()) == sorted(expected), f"{table}: keys differ"
        for key, row in expected.items():
            assert view.row(key) == row, f"{table} row {key}"


def progress(element: Element, name: str) -> dict[str, Any]:
    return element.table("Cache Progress").row(name)


def api_status(element: Element, name: str) -> dict[str, Any]:
    return element.table("API Status").row(name)


def requests_for(sim: Simulators, api: str) -> list[Any]:
    return [r for r in sim.requests(api) if r.method == "GET"]


# --------------------------------------------------------------------------------------------
# Showing nested values


class TestRows:
    def test_a_service_row_shows_nested_values_readably(self) -> None:
        item = {
            "id": "SVC-1", "name": "Internet 1", "description": "d", "state": "active", "serviceType": "Managed Internet",
            "startDate": "2025-01-01T00:00:00Z", "endDate": "2027-01-01T00:00:00Z", "lastUpdate": "2025-06-01T10:00:00Z",
            "relatedParty": [{"id": "P1", "name": "Acme", "role": "customer"}, {"id": "P2", "name": "SES"}],
            "place": [{"id": "S1", "name": "Betzdorf Teleport", "role": "teleport"}],
            "serviceSpecification": {"id": "SS-1", "name": "Managed Internet", "version": "2.0"},
            "supportingResource": [{"id": "RES-1", "name": "MDM-1"}, {"id": "RES-2"}],
        }  # fmt: skip
        assert service_row(item) == [
            "SVC-1", "Internet 1", "d", "active", "Managed Internet", "2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z",
            "2025-06-01T10:00:00Z", "customer: Acme; SES", "teleport: Betzdorf Teleport", "Managed Internet v2.0", "MDM-1; RES-2",
        ]  # fmt: skip

    def test_missing_attributes_are_empty_cells_and_odd_values_are_shown_as_json(self) -> None:
        row = service_row({"id": "SVC-2", "serviceSpecification": "plain", "relatedParty": {"name": "single"}})
        assert row == ["SVC-2", "", "", "", "", "", "", "", "single", "", "plain", ""]
        carrier = carrier_row({"id": "CAR-1", "@type": "element", "serviceCharacteristic": [
            {"name": "SymbolRateMsps", "value": 2.5}, {"name": "Enabled", "value": True}, {"name": "Plan", "value": {"a": [1]}},
        ]})  # fmt: skip
        assert carrier[4] == "element"  # no serviceType: the @type shows
        assert carrier[7] == 'SymbolRateMsps=2.5; Enabled=true; Plan={"a":[1]}'

    def test_a_resource_row_takes_place_as_one_object_and_shows_relationships(self) -> None:
        row = resource_row({
            "id": "RES-9", "@type": "Port", "resourceStatus": "available",
            "resourceSpecification": {"name": "10GE port"}, "place": {"name": "Betzdorf", "role": "installationSite"},
            "resourceRelationship": [{"relationshipType": "isContainedIn", "resource": {"id": "RES-3", "name": "Card 3"}}],
        })  # fmt: skip
        assert row[4:6] == ["Port", "10GE port"]
        assert row[8:] == ["installationSite: Betzdorf", "isContainedIn: Card 3"]


# --------------------------------------------------------------------------------------------
# Buildup, updates, restart


class TestBuildup:
    def test_the_start_up_buildup_reads_every_page_of_every_type(
        self, dms: DataMinerSystem, simulators: Simulators
    ) -> None:
        element = create(dms, simulators)
        assert_tables_match(element, simulators)
        services, resources = upstream(simulators, "tmf638"), upstream(simulators, "tmf639")
        listed = {  # status=1: what the server lists for each type's requests
            "Services": sum(item["state"] == "active" for item in services),
            "Carriers": sum(item["state"] == "active" and item["@type"] == "element" for item in services),
            "Resources": sum(item["resourceStatus"] == "available" for item in resources),
        }
        for name, count in listed.items():
            row = progress(element, name)
            assert row["Cache State"] == COMPLETE and row["Result"] == "OK"
            assert row["Pages Skipped"] == row["Empty IDs Skipped"] == row["Duplicate IDs Skipped"] == 0
            assert row["Items Listed"] == count and row["Pages Read"] == max(1, math.ceil(count / 40))
            # What was listed and what this type's table kept: the services list carries the carriers.
            assert row["Rows Kept"] == len(element.table(name)) <= count
        assert progress(element, "Services")["Rows Kept"] < progress(element, "Services")["Items Listed"]
        assert element.display("Last Completed Buildup") == "2026-01-01 00:00:00"
        assert element.get("Cache Phase") == 0
        for api in ("TMF 638", "TMF 639"):
            status = api_status(element, api)
            assert status["Communication Status"] == 1 and status["Last Error"] == "" and status["Last HTTP Status"] in (200, 206)
        expect(element).no_errors()

    def test_requests_follow_the_help_page(self, dms: DataMinerSystem, simulators: Simulators) -> None:
        create(dms, simulators)
        services = requests_for(simulators, "tmf638")
        resources = requests_for(simulators, "tmf639")
        assert services and resources
        assert all(r.path.startswith(f"{SES_BASE}/tmf638/service?") for r in services)
        assert all(r.path.startswith(f"{SES_BASE}/tmf639/resource?") for r in resources)
        assert all("limit=40" in r.path and "status=1" in r.path for r in services + resources)
        carriers = [r for r in services if "%40type=element" in r.path]
        assert carriers and len(carriers) < len(services)
        assert all(r.status in (200, 206) for r in services + resources)  # the credentials were accepted

    def test_records_per_page_and_active_items_only_are_honoured(
        self, dms: DataMinerSystem, simulators: Simulators
    ) -> None:
        element = create(dms, simulators, **{"Records Per Page": 250, "Active Items Only": 0})
        assert all("limit=250" in r.path and "status" not in r.path for r in requests_for(simulators, "tmf638"))
        assert_tables_match(element, simulators, active_only=False)
        assert {row["Status"] for row in element.table("Services").rows()} > {"active"}

    def test_bad_configuration_is_refused_with_a_clear_error(
        self, dms: DataMinerSystem, simulators: Simulators
    ) -> None:
        element = create(dms, simulators)
        for value in (3599, 432001, "often", float("nan")):
            with pytest.raises(InvalidValueError, match="Cache Update Frequency"):
                element.set("Cache Update Frequency", value)
        assert element.get("Cache Update Frequency") == 3600
        with pytest.raises(InvalidValueError, match="Cache Update Frequency.*3600 to 432000"):
            create(dms, simulators, name="Other", **{"Cache Update Frequency": 60})
        assert [e.name for e in dms.elements] == ["Inventory"]

    def test_passwords_are_write_only(self, dms: DataMinerSystem, simulators: Simulators) -> None:
        element = create(dms, simulators, **{"TMF 639 Password": "wrong-password-639"})
        assert element.get("TMF 638 Password") == element.get("TMF 639 Password") == "********"
        assert api_status(element, "TMF 639")["Communication Status"] == 2  # authentication failed
        texts = [entry.message for entry in element.logs()] + [str(row) for row in element.table("API Status").rows()]
        assert texts and not any("wrong-password-639" in text or "svc-secret-638" in text for text in texts)
        with pytest.raises(InvalidValueError) as refused:
            element.set("TMF 638 Password", 9876543210)  # a number where a password goes: refused, not echoed
        assert "9876543210" not in str(refused.value) and "TMF 638 Password" in str(refused.value)
        dms.flush()
        state_file = dms.state_dir / "elements" / "1-1.json"
        assert "svc-secret-638" in state_file.read_text()  # kept to log in after a restart...
        assert state_file.stat().st_mode & 0o077 == 0  # ...in a file only its owner can read


class TestPeriodicUpdates:
    CHURNING = InventorySpec(services=500, carriers=100, resources=400, seed=5, churn_per_day=0.5, arrivals_per_day=0.08)

    @pytest.mark.dmemu_simulators(spec=CHURNING)
    def test_updates_pick_up_changes_in_place(
        self, dms: DataMinerSystem, simulators: Simulators, dmemu_clock: VirtualClock
    ) -> None:
        element = create(dms, simulators)
        assert_tables_match(element, simulators)
        buildup_requests = len(simulators.requests())
        dmemu_clock.advance(HOUR + 60)
        updates = [r for r in simulators.requests()[buildup_requests:] if r.method == "GET"]
        assert updates and all("updatedDaysAgo=0" in r.path and "status" not in r.path for r in updates)
        assert_tables_match(element, simulators)  # changed, arrived and no-longer-active items all applied
        assert progress(element, "Services")["Last Update"] == START + HOUR
        for _ in range(3):
            dmemu_clock.advance(HOUR)
            assert_tables_match(element, simulators)
        expect(element).no_errors()

    @pytest.mark.dmemu_simulators(spec=CHURNING)
    def test_refresh_runs_an_update_at_once(
        self, dms: DataMinerSystem, simulators: Simulators, dmemu_clock: VirtualClock
    ) -> None:
        element = create(dms, simulators)
        dmemu_clock.advance(600)  # changes happened, but no update is due yet
        before = len(simulators.requests())
        element.set("Refresh Cache", 1)
        assert any("updatedDaysAgo=0" in r.path for r in simulators.requests()[before:])
        assert_tables_match(element, simulators)

    def test_each_update_window_covers_the_time_since_that_types_last_good_read(
        self, dms: DataMinerSystem, simulators: Simulators, dmemu_clock: VirtualClock
    ) -> None:
        element = create(dms, simulators)
        simulators.faults.add(Fault(api="tmf639", status=500))
        dmemu_clock.advance(3 * DAY)  # 72 hourly cycles, each failing on resources only
        simulators.faults.clear()
        before = len(simulators.requests())
        dmemu_clock.advance(HOUR)

        def windows(api: str) -> set[str]:
            asked = [
                r.path for r in simulators.requests()[before:] if r.api == api and "updatedDaysAgo" in r.path
            ]
            return {path.split("updatedDaysAgo=")[1].split("&")[0] for path in asked}

        assert windows("tmf638") == {"0"}  # services and carriers were read an hour ago
        assert windows("tmf639") == {"3"}  # resources: 3 days and an hour since their last good read, 4 days asked
        for name in ("Services", "Carriers", "Resources"):
            assert progress(element, name)["Last Good Read Start"] == dmemu_clock.now()  # the next windows start here
        assert_tables_match(element, simulators)

    def test_a_new_frequency_counts_from_the_last_cycle(
        self, dms: DataMinerSystem, simulators: Simulators, dmemu_clock: VirtualClock
    ) -> None:
        element = create(dms, simulators)
        element.set("Cache Update Frequency", 7200)
        assert element.get("Next Cache Update") == dmemu_clock.now() + 7200
        before = len(simulators.requests())
        dmemu_clock.advance(HOUR + 60)
        assert len(simulators.requests()) == before  # the old hourly update no longer runs
        dmemu_clock.advance(HOUR)
        assert len(simulators.requests()) > before


class TestRestart:
    def test_tables_are_saved_and_shown_at_once_after_a_restart(
        self, dmemu_state_dir: Path, dmemu_clock: VirtualClock, simulators: Simulators
    ) -> None:
        with DataMinerSystem(dmemu_state_dir, dmemu_clock) as dms:
            create(dms, simulators)
            counts = {name: len(dms.element("Inventory").table(name)) for name in ("Services", "Carriers", "Resources")}
        simulators.faults.add(Fault(status=503))  # the start-up buildup fails this time
        with DataMinerSystem(dmemu_state_dir, dmemu_clock) as dms:
            element = dms.element("Inventory")
            assert {name: len(element.table(name)) for name in counts} == counts
            assert progress(element, "Services")["Cache State"] == INCOMPLETE
            assert element.get("TMF 638 Password") == "********"  # the configuration survived
            simulators.faults.clear()
            dmemu_clock.advance(HOUR + 60)  # the next cycle builds the cache again
            assert progress(element, "Services")["Cache State"] == COMPLETE
            assert_tables_match(element, simulators)

    def test_items_deleted_upstream_go_after_the_next_complete_buildup(
        self, dms: DataMinerSystem, simulators: Simulators, dmemu_clock: VirtualClock
    ) -> None:
        element = create(dms, simulators)
        gone = element.table("Services").keys()[3]
        simulators.services.delete(gone)
        dmemu_clock.advance(HOUR + 60)
        assert gone in element.table("Services")  # an update cannot know
        element.set("Rebuild Cache", 1)
        assert gone not in element.table("Services")
        assert_tables_match(element, simulators)
        expect(element).logged("1 rows no longer listed upstream were removed")


# --------------------------------------------------------------------------------------------
# When things go wrong


class TestFaults:
    DIRTY = InventorySpec(services=300, carriers=60, resources=200, seed=3, duplicate_ids=4, empty_ids=3)

    @pytest.mark.dmemu_simulators(spec=DIRTY)
    def test_empty_ids_are_skipped_and_counted_and_the_first_duplicate_is_kept(
        self, dms: DataMinerSystem, simulators: Simulators
    ) -> None:
        element = create(dms, simulators, **{"Active Items Only": 0})
        assert_tables_match(element, simulators, active_only=False)
        services, resources = progress(element, "Services"), progress(element, "Resources")
        # The services list carries the carriers too: both collections' extras show there.
        assert services["Empty IDs Skipped"] == 3 and services["Duplicate IDs Skipped"] == 4
        assert resources["Empty IDs Skipped"] == 3 and resources["Duplicate IDs Skipped"] == 4

    def test_a_504_skips_one_page_and_the_next_cycle_fills_it(
        self, dms: DataMinerSystem, simulators: Simulators, dmemu_clock: VirtualClock
    ) -> None:
        simulators.faults.add(Fault(api="tmf639", status=504, pages={2}))
        element = create(dms, simulators, conn=connection(simulators, retry=NO_RETRIES))
        resources = progress(element, "Resources")
        assert resources["Pages Skipped"] == 1 and resources["Cache State"] == INCOMPLETE
        assert resources["Pages Read"] == math.ceil(resources["Items Listed"] / 40)
        assert len(element.table("Resources")) == len(expected_tables(simulators)["Resources"]) - 40
        assert progress(element, "Services")["Cache State"] == COMPLETE
        expect(element).logged("answered 504 Gateway Timeout; page skipped", LogType.ERROR)
        simulators.faults.clear()
        dmemu_clock.advance(HOUR + 60)
        assert progress(element, "Resources")["Cache State"] == COMPLETE
        assert_tables_match(element, simulators)

    # The help page's rule: 504s in a row before any page told the total mean the API is down
    # for now; five of them end the type for this cycle. Once the total is known, the connector
    # knows where the list ends, so it skips on to it however many pages time out.
    GIVE_UP_AFTER = 5

    def resource_rows(self, simulators: Simulators) -> list[str]:
        """The Resources table's keys in listing order, read before any fault is in force."""
        return list(expected_tables(simulators)["Resources"])

    def build_with(self, dms: DataMinerSystem, simulators: Simulators, fault: Fault) -> tuple[Element, int]:
        """The element built with `fault` in force, and how many resource pages it asked for."""
        before = len(requests_for(simulators, "tmf639"))
        simulators.faults.add(fault)
        element = create(dms, simulators, conn=connection(simulators, retry=NO_RETRIES))
        return element, len(requests_for(simulators, "tmf639")) - before

    def test_504s_from_the_first_page_end_the_type_after_five_in_a_row(
        self, dms: DataMinerSystem, simulators: Simulators
    ) -> None:
        element, asked = self.build_with(dms, simulators, Fault(api="tmf639", status=504, pages=set(range(50))))  # every page
        assert asked == self.GIVE_UP_AFTER
        resources = progress(element, "Resources")
        assert resources["Pages Skipped"] == self.GIVE_UP_AFTER and resources["Pages Read"] == 0
        assert resources["Cache State"] == INCOMPLETE
        assert resources["Result"] == "Failed: 5 pages in a row answered 504; giving up until the next cycle"
        assert len(element.table("Resources")) == 0
        assert progress(element, "Services")["Cache State"] == COMPLETE

    def test_fewer_504s_than_that_before_the_total_go_on_to_the_end(
        self, dms: DataMinerSystem, simulators: Simulators
    ) -> None:
        expected = self.resource_rows(simulators)
        pages = math.ceil(len(expected) / 40)
        skipped = set(range(self.GIVE_UP_AFTER - 1))  # pages 0 to 3: the fifth page tells the total
        element, asked = self.build_with(dms, simulators, Fault(api="tmf639", status=504, pages=skipped))
        assert asked == pages
        resources = progress(element, "Resources")
        assert resources["Pages Skipped"] == len(skipped) and resources["Pages Read"] == pages - len(skipped)
        assert resources["Cache State"] == INCOMPLETE and resources["Result"] == "Incomplete, 4 pages skipped"
        assert sorted(element.table("Resources").keys()) == sorted(expected[40 * len(skipped) :])

    def test_once_the_total_is_known_any_number_of_504s_in_a_row_are_skipped(
        self, dms: DataMinerSystem, simulators: Simulators
    ) -> None:
        expected = self.resource_rows(simulators)
        pages = math.ceil(len(expected) / 40)
        skipped = set(range(1, pages - 1))  # all but the first and the last: more than five in a row
        assert len(skipped) > self.GIVE_UP_AFTER
        element, asked = self.build_with(dms, simulators, Fault(api="tmf639", status=504, pages=skipped))
        assert asked == pages  # it read on to the last page
        resources = progress(element, "Resources")
        assert resources["Pages Skipped"] == len(skipped) and resources["Pages Read"] == 2
        assert resources["Cache State"] == INCOMPLETE and resources["Result"] == f"Incomplete, {len(skipped)} pages skipped"
        assert sorted(element.table("Resources").keys()) == sorted(expected[:40] + expected[40 * (pages - 1) :])

    def test_the_page_cap_ends_the_type_incomplete_and_a_capped_rebuild_removes_nothing(
        self, dms: DataMinerSystem, simulators: Simulators, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        element = create(dms, simulators, conn=connection(simulators, retry=NO_RETRIES))
        everything = sorted(element.table("Resources").keys())
        assert len(everything) > 3 * 40
        monkeypatch.setattr(ses_inventory, "MAX_PAGES_PER_TYPE", 3)  # the real cap is 100,000 pages
        before = len(requests_for(simulators, "tmf639"))
        element.set("Rebuild Cache", 1)
        assert len(requests_for(simulators, "tmf639")) - before == 3
        resources = progress(element, "Resources")
        assert resources["Pages Read"] == 3 and resources["Cache State"] == INCOMPLETE and resources["Result"] == "Incomplete"
        expect(element).logged("Resources: stopped after 3 pages", LogType.ERROR)
        assert sorted(element.table("Resources").keys()) == everything  # not listed past the cap is not gone

    def test_another_failure_moves_on_to_the_next_type_and_keeps_the_tables(
        self, dms: DataMinerSystem, simulators: Simulators
    ) -> None:
        element = create(dms, simulators, conn=connection(simulators, retry=NO_RETRIES))
        before = {name: element.table(name).rows() for name in ("Services", "Carriers", "Resources")}
        simulators.faults.add(Fault(api="tmf638", status=500, pages={3}))  # a services page in the middle
        simulators.faults.add(Fault(api="tmf639", status=502))
        element.set("Rebuild Cache", 1)
        assert progress(element, "Services")["Result"].startswith("Failed: TMF 638 service offset 120: 500 Internal Server Error")
        assert progress(element, "Services")["Pages Read"] == 3
        assert progress(element, "Carriers")["Cache State"] == COMPLETE  # moved on to the next type
        assert progress(element, "Resources")["Result"].startswith("Failed: TMF 639 resource offset 0: 502")
        assert {name: element.table(name).rows() for name in before} == before  # nothing wiped
        status = api_status(element, "TMF 639")
        assert status["Communication Status"] == 5 and status["Last HTTP Status"] == 502
        assert status["Last Success"] == START  # from the first buildup
        assert element.get("Last Completed Buildup") == START

    @pytest.mark.parametrize(
        ("fault", "status", "message"),
        [
            (Fault(api="tmf638", kind="malformed"), 6, "malformed JSON"),
            (Fault(api="tmf638", kind="drop"), 4, "connection failed"),
            (Fault(api="tmf638", kind="truncated"), 4, "connection failed"),
            (Fault(api="tmf638", kind="latency", latency=0.5), 3, "no answer within 0.2 s"),
        ],
    )
    def test_broken_answers_set_a_clear_status_and_never_crash(
        self, dms: DataMinerSystem, simulators: Simulators, dmemu_clock: VirtualClock, fault: Fault, status: int, message: str
    ) -> None:
        element = create(dms, simulators, conn=connection(simulators, retry=NO_RETRIES, timeout=0.2))
        rows = element.table("Services").rows()
        simulators.faults.add(fault)
        element.set("Rebuild Cache", 1)
        assert api_status(element, "TMF 638")["Communication Status"] == status
        assert message in api_status(element, "TMF 638")["Last Error"]
        expect(element).logged(message, LogType.ERROR)
        assert element.table("Services").rows() == rows
        assert progress(element, "Resources")["Cache State"] == COMPLETE
        simulators.faults.clear()
        dmemu_clock.advance(HOUR + 60)
        assert api_status(element, "TMF 638")["Communication Status"] == 1

    def test_wrong_credentials_show_as_an_authentication_failure(
        self, dms: DataMinerSystem, simulators: Simulators
    ) -> None:
        element = create(dms, simulators, **{"TMF 638 Username": "nobody"})
        status = api_status(element, "TMF 638")
        assert status["Communication Status"] == 2 and status["Last HTTP Status"] == 401
        assert "check the TMF 638 username and password" in status["Last Error"]
        assert len(element.table("Services")) == 0 and progress(element, "Services")["Cache State"] == INCOMPLETE
        assert progress(element, "Resources")["Cache State"] == COMPLETE
