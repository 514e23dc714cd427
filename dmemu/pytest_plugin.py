"""pytest fixtures for testing with dmemu; installing dmemu registers them (entry point ``pytest11``).

- ``dmemu_clock``: a `VirtualClock` at 2026-01-01 UTC, the simulators' default start;
- ``dmemu_state_dir``: a fresh, empty state directory under ``tmp_path``;
- ``dms``: a `DataMinerSystem` on that clock and directory, closed after the test;
- ``simulators``: started `Simulators` on 127.0.0.1 whose ``now`` is the clock's, stopped
  after the test;
- ``expect``: `dmemu.protocol.expect`, for tests that prefer fixtures to imports.

The simulators' data set, credentials and faults come from the ``dmemu_simulators`` marker, on
a test, a class or a module (``pytestmark``)::

    @pytest.mark.dmemu_simulators(spec=InventorySpec(services=50), credentials={"tmf638": ("u", "p")},
                                  faults=[Fault(api="tmf639", status=504, pages={2})])
    def test_something(dms, simulators): ...

Its keywords are ``spec``, ``credentials`` and ``seed`` (of the faults' probabilities), as
`Simulators` takes them, and ``faults``: `Fault` objects in force from the first request. The
spec may also be a mapping of `InventorySpec`'s fields (``spec={"services": 30}``).
Markers at several levels merge keyword by keyword, the closest winning: a module can set the
credentials and one test its own spec.

Each fixture is an ordinary pytest fixture, so a test module or conftest that defines one of
the same name replaces it; the others then build on the replacement. A spec with another
``start`` wants a ``dmemu_clock`` of the test's own that starts there: the DMS and the
simulators follow it. ``-p no:dmemu`` turns the plugin off.

pytest imports this module in every run of a project with dmemu installed, so the engine and
the simulators are imported only inside the fixtures, when a test asks for them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from dmemu.dms import DataMinerSystem
    from dmemu.protocol import Clock, Element, VirtualClock
    from dmemu.protocol.testing import ElementAssertions
    from dmemu.simulators import InventorySpec, Simulators

SIMULATORS_MARKER = "dmemu_simulators"
SIMULATORS_MARKER_KEYWORDS = ("spec", "credentials", "faults", "seed")


def pytest_configure(config: pytest.Config) -> None:
    # Registered so that --strict-markers accepts it and `pytest --markers` documents it.
    config.addinivalue_line(
        "markers",
        f"{SIMULATORS_MARKER}(spec=None, credentials=None, faults=(), seed=1): the data set (an InventorySpec or a "
        "mapping of its fields), credentials and faults of dmemu's `simulators` fixture; markers on a module, class "
        "and test merge keyword by keyword.",
    )


def simulators_settings(node: pytest.Item) -> dict[str, Any]:
    """The ``dmemu_simulators`` keywords that apply to a test, the closest marker winning each."""
    settings: dict[str, Any] = {}
    # iter_markers yields the closest marker first (test, class, module): apply them the other way round.
    for marker in reversed(list(node.iter_markers(SIMULATORS_MARKER))):
        unknown = sorted(set(marker.kwargs) - set(SIMULATORS_MARKER_KEYWORDS))
        if marker.args or unknown:
            given = ", ".join([*(repr(arg) for arg in marker.args), *unknown])
            pytest.fail(
                f"@pytest.mark.{SIMULATORS_MARKER} takes only the keywords {', '.join(SIMULATORS_MARKER_KEYWORDS)}; got {given}",
                pytrace=False,
            )
        settings.update(marker.kwargs)
    return settings


def inventory_spec(spec: object) -> InventorySpec | None:
    """The marker's ``spec`` as `Simulators` takes it: an `InventorySpec` (or None, the default
    data set) as given, a mapping turned into one; anything else, a key it has not or a value it
    refuses is a usage error naming the culprit."""
    import attrs

    from dmemu.simulators import InventorySpec

    if spec is None or isinstance(spec, InventorySpec):
        return spec
    where = f"@pytest.mark.{SIMULATORS_MARKER}(spec=...)"
    if not isinstance(spec, Mapping):
        pytest.fail(f"{where}: a spec is an InventorySpec or a mapping of its fields, not {spec!r}", pytrace=False)
    fields = [field.name for field in attrs.fields(InventorySpec)]
    for key in spec:
        if key not in fields:
            near = difflib.get_close_matches(key, fields, n=1) if isinstance(key, str) else []
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            pytest.fail(f"{where}: InventorySpec has no field {key!r}{hint}; its fields: {', '.join(fields)}", pytrace=False)
    try:
        return InventorySpec(**spec)
    except (TypeError, ValueError) as error:
        pytest.fail(f"{where}: {dict(spec)!r} is no InventorySpec: {error}", pytrace=False)


@pytest.fixture
def dmemu_clock() -> VirtualClock:
    from dmemu.protocol import VirtualClock

    return VirtualClock()


@pytest.fixture
def dmemu_state_dir(tmp_path: Path) -> Path:
    state_dir = tmp_path / "dmemu-state"
    state_dir.mkdir()
    return state_dir


@pytest.fixture
def dms(dmemu_state_dir: Path, dmemu_clock: Clock) -> Iterator[DataMinerSystem]:
    from dmemu.dms import DataMinerSystem

    with DataMinerSystem(dmemu_state_dir, dmemu_clock) as system:
        yield system


@pytest.fixture
def simulators(request: pytest.FixtureRequest, dmemu_clock: Clock) -> Iterator[Simulators]:
    from dmemu.simulators import Fault, Simulators

    settings = simulators_settings(request.node)
    faults = list(settings.get("faults") or ())
    wrong = [repr(fault) for fault in faults if not isinstance(fault, Fault)]
    if wrong:
        pytest.fail(
            f"@pytest.mark.{SIMULATORS_MARKER}: faults are Fault objects, not {', '.join(wrong)}", pytrace=False
        )
    credentials: Mapping[str, tuple[str, str]] | None = settings.get("credentials")
    running = Simulators(
        inventory_spec(settings.get("spec")), credentials=credentials, now=dmemu_clock.now, seed=settings.get("seed", 1)
    )
    # Added before the server starts, so that no request can arrive ahead of its fault.
    running.faults.add(*faults)
    with running:
        yield running


@pytest.fixture
def expect() -> Callable[[Element], ElementAssertions]:
    from dmemu.protocol import expect as expect_element

    return expect_element
