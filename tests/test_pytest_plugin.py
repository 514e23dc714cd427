"""The pytest plugin, seen from a user's project: test files run in a pytest of their own (pytester)."""

from __future__ import annotations

import pytest

import dmemu.pytest_plugin

pytest_plugins = ["pytester"]


def run(pytester: pytest.Pytester, test_file: str, *args: str) -> pytest.RunResult:
    """A user's test file, run in-process by a pytest that finds the plugin through its entry point."""
    pytester.makepyfile(test_file)
    return pytester.runpytest("--strict-markers", "-p", "no:cacheprovider", *args)


def test_the_plugin_is_registered_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.get_plugin("dmemu") is dmemu.pytest_plugin


def test_a_users_tests_get_a_dms_on_a_virtual_clock_simulators_and_expect(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        import requests
        from dmemu.protocol import Parameter, Protocol, String, VirtualClock, expect as imported_expect
        from dmemu.dms import DataMinerSystem
        from dmemu.simulators import InventorySpec, Simulators

        CREDENTIALS = {"tmf638": ("user", "secret")}

        class Greeter(Protocol):
            name = "Greeter"
            parameters = (Parameter(1, "Greeting", String(), default="hello"),)

        def test_the_dms_runs_on_the_clock_in_the_state_directory(dms, dmemu_clock, dmemu_state_dir, tmp_path, expect):
            assert isinstance(dms, DataMinerSystem) and isinstance(dmemu_clock, VirtualClock)
            assert dms.clock is dmemu_clock and dms.state_dir == dmemu_state_dir
            assert dmemu_state_dir.parent == tmp_path and dmemu_state_dir.is_dir()
            assert expect is imported_expect
            expect(dms.create_element(Greeter, "Greeter")).parameter("Greeting").equals("hello")

        @pytest.mark.dmemu_simulators(spec=InventorySpec(services=7, carriers=2, resources=5), credentials=CREDENTIALS)
        def test_the_simulators_serve_the_marked_data_set_on_the_same_clock(simulators, dmemu_clock):
            assert isinstance(simulators, Simulators) and simulators.base_url.startswith("http://127.0.0.1:")
            assert simulators.now == dmemu_clock.now
            assert requests.get(simulators.url("tmf638")).status_code == 401
            page = requests.get(simulators.url("tmf638"), auth=CREDENTIALS["tmf638"])
            assert page.headers["X-Total-Count"] == "9"

        def test_without_a_marker_the_simulators_serve_the_default_data_set_openly(simulators):
            page = requests.get(simulators.url("tmf639"), params={"limit": 1})
            assert page.status_code == 206 and page.headers["X-Total-Count"] == str(InventorySpec().resources)
        """,
    )
    result.assert_outcomes(passed=3)


def test_a_fault_chosen_through_the_marker_is_served(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        import requests
        from dmemu.simulators import Fault

        @pytest.mark.dmemu_simulators(faults=[Fault(api="tmf639", status=504, pages={1})], seed=7)
        def test_the_second_page_times_out(simulators):
            pages = [requests.get(simulators.url("tmf639"), params={"offset": offset, "limit": 10}) for offset in (0, 10, 20)]
            assert [page.status_code for page in pages] == [206, 504, 206]
            assert requests.get(simulators.url("tmf638")).status_code == 200
            assert [record.status for record in simulators.requests("tmf639")] == [206, 504, 206]
        """,
    )
    result.assert_outcomes(passed=1)


def test_markers_merge_keyword_by_keyword_with_the_closest_winning(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        import requests
        from dmemu.simulators import InventorySpec

        AUTH = ("user", "secret")
        pytestmark = pytest.mark.dmemu_simulators(spec=InventorySpec(services=3, carriers=0), credentials={"tmf638": AUTH})

        def total(simulators):
            return requests.get(simulators.url("tmf638"), auth=AUTH).headers["X-Total-Count"]

        def test_the_module_marker_applies(simulators):
            assert total(simulators) == "3"

        @pytest.mark.dmemu_simulators(spec=InventorySpec(services=4, carriers=0))
        class TestAClassMarker:
            def test_its_spec_wins_and_the_module_credentials_stay(self, simulators):
                assert total(simulators) == "4"
                assert requests.get(simulators.url("tmf638")).status_code == 401

            @pytest.mark.dmemu_simulators(spec=InventorySpec(services=5, carriers=0))
            def test_the_test_marker_wins_over_the_class(self, simulators):
                assert total(simulators) == "5"
        """,
    )
    result.assert_outcomes(passed=3)


def test_the_dms_is_closed_and_the_simulators_stopped_after_the_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import socket
        import pytest
        from dmemu.protocol import DmemuError, Protocol

        class Empty(Protocol):
            name = "Empty"

        # Set up before the plugin's fixtures (autouse), so torn down after them: its checks see
        # them closed whatever order the tests run in.
        @pytest.fixture(autouse=True)
        def closed_afterwards():
            used = {}
            yield used
            if not used:
                return
            with pytest.raises(DmemuError, match="closed"):
                used["dms"].create_element(Empty, "After")
            host, port = used["simulators"].base_url.removeprefix("http://").split(":")
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((host, int(port)), timeout=1).close()

        def test_uses_them(dms, simulators, closed_afterwards):
            closed_afterwards.update(dms=dms, simulators=simulators)
            dms.create_element(Empty, "Before")
        """,
    )
    result.assert_outcomes(passed=1)  # and no error: the checks at teardown held


def test_the_spec_may_be_a_mapping_of_inventory_spec_fields(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        import requests

        pytestmark = pytest.mark.dmemu_simulators(spec={"services": 30, "carriers": 0})

        def test_the_module_mapping_applies(simulators):
            assert requests.get(simulators.url("tmf638"), params={"limit": 1}).headers["X-Total-Count"] == "30"

        @pytest.mark.dmemu_simulators(spec={"services": 4, "carriers": 1, "resources": 2})
        def test_a_test_mapping_wins(simulators):
            assert requests.get(simulators.url("tmf638"), params={"limit": 1}).headers["X-Total-Count"] == "5"
            assert requests.get(simulators.url("tmf639"), params={"limit": 1}).headers["X-Total-Count"] == "2"
        """,
    )
    result.assert_outcomes(passed=2)


def test_a_users_own_fixtures_override_the_plugins(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from dmemu.protocol import VirtualClock
        from dmemu.dms import DataMinerSystem

        @pytest.fixture
        def dmemu_clock():
            return VirtualClock(1_800_000_000)

        @pytest.fixture
        def dms(tmp_path, dmemu_clock):
            with DataMinerSystem(tmp_path / "my-state", dmemu_clock, agent_ids=(346,)) as system:
                yield system
        """
    )
    result = run(
        pytester,
        """
        def test_the_users_dms_is_used(dms, tmp_path):
            assert dms.agent_ids == (346,) and dms.state_dir == tmp_path / "my-state"

        def test_the_users_clock_is_under_the_dms_and_the_simulators(dms, simulators):
            assert dms.clock.now() == simulators.now() == 1_800_000_000
        """,
    )
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "dmemu_simulators(InventorySpec())",
            "takes only the keywords spec, credentials, faults, seed; got InventorySpec(",
        ),
        ("dmemu_simulators(spce=InventorySpec())", "got spce"),
        ('dmemu_simulators(faults=[{"status": 503}])', "faults are Fault objects, not {'status': 503}"),
        (
            'dmemu_simulators(spec={"servces": 3})',
            "(spec=...): InventorySpec has no field 'servces' (did you mean 'services'?); its fields: services, carriers,",
        ),
        ('dmemu_simulators(spec={"services": -1})', "(spec=...): {'services': -1} is no InventorySpec: "),
        ("dmemu_simulators(spec=30)", "(spec=...): a spec is an InventorySpec or a mapping of its fields, not 30"),
    ],
)
def test_a_misused_marker_is_a_one_line_error(pytester: pytest.Pytester, marker: str, message: str) -> None:
    result = run(
        pytester,
        f"""
        import pytest
        from dmemu.simulators import InventorySpec

        @pytest.mark.{marker}
        def test_something(simulators):
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{message}*"])


def test_the_marker_is_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.dmemu_simulators(spec=None, credentials=None, faults=(), seed=1):*"])


def test_runs_that_use_no_fixture_do_not_import_the_engine_or_the_simulators(pytester: pytest.Pytester) -> None:
    # In a process of its own: this one has imported everything already.
    pytester.makepyfile(
        """
        import sys

        def test_nothing_heavy_is_imported(request):
            assert request.config.pluginmanager.has_plugin("dmemu")
            heavy = [name for name in ("dmemu.protocol", "dmemu.simulators", "requests", "tinydb") if name in sys.modules]
            assert heavy == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
