"""The examples run as a user would run them, and the command line answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dmemu import __version__
from dmemu.cli import main
from dmemu.dms import DataMinerSystem
from dmemu.elements.ses_inventory import SesInventoryManagement
from dmemu.protocol import Column, Number, Page, PageButton, Parameter, Protocol, QAction, String, Table, VirtualClock
from dmemu.protocol.definitions import PROTOCOLS, protocol_path

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_poller_example_prints_its_table():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "run_tiny_poller.py")], capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "Tiny Poller 1: 5 items, last HTTP status 200"
    assert [line.split()[0] for line in lines[1:]] == [f"item-{n}" for n in range(1, 6)]


def test_inventory_example_builds_the_cache_and_follows_a_day_of_changes():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "inventory.py"), "--services", "300", "--carriers", "60", "--resources", "200"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[0] == "SES Inventory: cache built at 2026-01-01 00:00:00"
    assert [line.split()[0] for line in lines[1:4]] == ["Services", "Carriers", "Resources"]
    assert all(line.endswith(": OK") for line in lines[1:4])
    assert [line.split(":")[0] for line in lines if not line.startswith(" ")][1:4] == ["Services", "Carriers", "Resources"]
    assert lines[-1].startswith("After a day: 72 update requests, last cycle 2026-01-02 00:00:00")
    assert result.stderr == ""


def test_ses_service_problems_example_follows_tickets_both_ways():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ses_service_problems.py"), "--tickets", "3"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[0] == "SES Service Problems: OK, 3 created upstream"
    assert sorted(line.split()[1] for line in lines[1:4]) == ["INC0000001", "INC0000002", "INC0000003"]
    sides = sorted(
        re.fullmatch(r"  INC\d+: DataMiner (.+?)\s+priority\s+(\d+) \| upstream (\S+)\s+priority (\d+)", line).groups()
        for line in lines[5:8]
    )
    assert sides == [("In Progress", "1", "inProgress", "1"), ("New", "2", "acknowledged", "2"), ("Resolved", "2", "resolved", "2")]
    assert lines[-1] == "Upstream problems: 3"


def test_tmf_service_problems_example_shows_custom_attributes_imports_and_refusals():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tmf_service_problems.py")], capture_output=True, text=True, timeout=120, check=True
    )
    lines = result.stdout.splitlines()
    assert lines[1] == ("Created upstream: SP-0000002 @type OrbitalServiceProblem, characteristic "
                        "[('siteCategory', 'gold'), ('slaMinutes', 240)], beamName B7")  # SP-0000001: the ServiceNow user's
    assert lines[2] == "Imported from ServiceNow: 1 ticket(s): Slow internet on vessel Aurora"
    assert lines[3].startswith("After ServiceNow set an unknown site category: the ticket is In Progress, Site Category still 'gold'")
    assert "siteCategory 'platinum' is not one of gold, silver, bronze" in lines[3]


def test_telenet_ticketing_example_creates_updates_and_closes_tickets_through_three_clients():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "telenet_ticketing.py"), "--routers", "4"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[0] == "Alarms opened: 4 flows: created MO-000001, created MO-000002, created MO-000003, created MO-000004"
    assert lines[1:3] == ["Severity changed: 1 flow: updated MO-000001", "Alarm cleared: 1 flow: closed MO-000004"]
    tickets = [line.split()[:3] for line in lines[4:8]]
    assert tickets == [["MO-000001", "Open", "Critical"], ["MO-000002", "Open", "Major"], ["MO-000003", "Open", "Major"], ["MO-000004", "Closed", "Major"]]
    assert lines[9:13] == [
        "  alarm 1 on Router 1: active, Ticket ID MO-000001", "  alarm 2 on Router 2: active, Ticket ID MO-000002",
        "  alarm 3 on Router 3: active, Ticket ID MO-000003", "  alarm 4 on Router 4: cleared, Ticket ID MO-000004",
    ]  # fmt: skip
    pages = [line for line in lines if line.startswith("Telenet Ticket Client 1 ")]
    assert [page.rsplit("page ", 1)[1] for page in pages] == ["Connection Details", "Communication", "Search Results"]
    for shown in ("Lock Status        Unlocked", "Communication - Response Table:", "Ninas Network Path Details: 4 rows", "Searched Tickets:"):
        assert any(line.startswith(shown) for line in lines), shown
    assert result.stderr == ""


def test_cli_lists_the_elements_of_a_state_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    from tiny_poller import TinyPoller

    with DataMinerSystem(tmp_path, VirtualClock()) as dms:
        dms.create_element(TinyPoller, "Poller A", start=False)
        dms.create_element(TinyPoller, "Poller B", start=False).start()
    assert main(["elements", "--state", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["Poller", "A", "1/1", "saved", "as", "Stopped", "tiny_poller:TinyPoller"]
    assert out[1].split()[2:6] == ["1/2", "saved", "as", "Active"]


def test_cli_errors_are_one_line_with_a_non_zero_exit(tmp_path, capsys):
    assert main(["elements", "--state", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no DataMiner System" in err
    (tmp_path / "dms.json").write_text("{broken")
    assert main(["elements", "--state", str(tmp_path)]) == 2
    assert "dms.json is corrupt" in capsys.readouterr().err


def test_cli_version_through_the_console_script():
    console_script = Path(sys.executable).parent / "dmemu"  # installed next to this Python by pip
    result = subprocess.run([str(console_script), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"dmemu {__version__}"


# -- dmemu show -------------------------------------------------------------------------------

METER_SECRET = "m3ter-secret-not-for-eyes"
SES_PASSWORDS = ("tmf638-Pa55-hidden", "tmf639-Pa55-hidden")


def fill_readings(protocol):
    protocol.fill_array("Readings", [[f"r-{n:03d}", n / 10] for n in range(protocol.get_parameter("Count"))])


class Meter(Protocol):
    name = "Meter"
    pages = (Page("General"), Page("Readings", order=1), Page("Setup", order=2), Page("Access", parent="Setup"))
    parameters = (
        Parameter(1, "Count", Number(0, 10_000), write=True, save=True, default=0, page="Setup"),
        Parameter(2, "Access Details", PageButton("Access"), page="Setup"),
        Parameter(3, "Secret", String(secret=True), write=True, save=True, default="", page="Access"),
        Parameter(4, "Model", String(), default="MX-1", page="General"),
    )
    tables = (
        Table(100, "Readings", save=True, page="Readings", columns=(Column(101, "Key", key=True), Column(102, "Level", Number(units="V", decimals=1)))),
    )  # fmt: skip
    qactions = (QAction(1, fill_readings, triggers=(1,)),)


@pytest.fixture
def meter_state(tmp_path):
    with DataMinerSystem(tmp_path, VirtualClock()) as dms:
        dms.create_element(Meter, "Meter A", parameters={"Secret": METER_SECRET}).set("Count", 30)
        dms.create_element(Meter, "Meter B", start=False)
    return tmp_path


def show(capsys, *args: str) -> str:
    assert main(["show", *args]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_cli_show_lists_the_elements_the_pages_and_renders_a_page(meter_state, capsys):
    state = str(meter_state)
    assert show(capsys, "--state", state).splitlines() == [
        "Meter A  1/1  saved as Active   Meter", "Meter B  1/2  saved as Stopped  Meter",
    ]  # fmt: skip
    assert show(capsys, "--state", state, "Meter A", "--width", "80").splitlines() == [
        "Meter A (1/1) | Meter | saved as Active",
        "=" * 39,
        "",
        "General   1 parameter",
        "Readings  Readings: 30 rows",
        "Setup     2 parameters",
        "  Access  1 parameter",
    ]
    page = show(capsys, "--state", state, "Meter A", "Readings", "--rows", "3", "--width", "40").splitlines()
    assert page == [
        "Meter A (1/1) | Meter | saved as Active",
        "page Readings",
        "=" * 39,
        "",
        "Readings: 30 rows",
        "Key    Level",
        "-----  -----",
        "r-000  0.0 V",
        "r-001  0.1 V",
        "r-002  0.2 V",
        "… and 27 more rows",
    ]
    by_ids = show(capsys, "--state", state, "1/2", "setup", "--width", "80").splitlines()
    assert by_ids[0] == "Meter B (1/2) | Meter | saved as Stopped | page Setup"
    assert by_ids[-3:] == ["Access Details  [Access...]", "", "Sub-pages: Access"]


def test_cli_show_json_for_programs(meter_state, capsys):
    state = str(meter_state)
    listing = json.loads(show(capsys, "--state", state, "--json"))
    assert [(e["name"], e["agent_id"], e["element_id"], e["state"]) for e in listing["elements"]] == [
        ("Meter A", 1, 1, "Active"), ("Meter B", 1, 2, "Stopped"),
    ]  # fmt: skip
    pages = json.loads(show(capsys, "--state", state, "Meter A", "--json"))
    assert pages["pages"][1]["tables"] == [{"id": 100, "name": "Readings", "row_count": 30}]
    (table,) = json.loads(show(capsys, "--state", state, "Meter A", "Readings", "--json"))["tables"]
    assert table["row_count"] == 30 and len(table["rows"]) == 30 and table["rows"][4] == ["r-004", 0.4]
    (table,) = json.loads(show(capsys, "--state", state, "Meter A", "Readings", "--json", "--rows", "2"))["tables"]
    assert table["rows"] == [["r-000", 0.0], ["r-001", 0.1]]
    (secret,) = json.loads(show(capsys, "--state", state, "Meter A", "Access", "--json"))["parameters"]
    assert secret == {"id": 3, "name": "Secret", "value": "********", "display": "********", "secret": True}


def test_cli_show_never_prints_a_password(meter_state, capsys):
    assert METER_SECRET in (meter_state / "elements" / "1-1.json").read_text()  # it is there to leak
    state = str(meter_state)
    outputs = [show(capsys, "--state", state, *extra) for extra in ([], ["--json"])]
    for page in ("", "General", "Readings", "Setup", "Access"):
        for extra in ([], ["--json"], ["--width", "20"]):
            outputs.append(show(capsys, "--state", state, "Meter A", *([page] if page else []), *extra))
    assert all(METER_SECRET not in output for output in outputs)
    assert "Secret  ********" in outputs[-3]


def test_cli_show_ses_inventory_saved_without_running_it(tmp_path, capsys):
    with DataMinerSystem(tmp_path, VirtualClock()) as dms:
        dms.create_element(
            SesInventoryManagement, "SES Inventory", start=False,
            parameters={"TMF 638 Username": "svc", "TMF 638 Password": SES_PASSWORDS[0], "TMF 639 Password": SES_PASSWORDS[1]},
        )  # fmt: skip
    state = str(tmp_path)
    assert show(capsys, "--state", state).split() == ["SES", "Inventory", "1/1", "saved", "as", "Stopped", "SES", "Inventory", "Management"]
    assert show(capsys, "--state", state, "SES Inventory", "--width", "100").splitlines()[3:] == [
        "General        6 parameters, Cache Progress: 0 rows, API Status: 0 rows",
        "Services       Services: 0 rows",
        "Carriers       Carriers: 0 rows",
        "Resources      Resources: 0 rows",
        "Configuration  9 parameters",
    ]
    configuration = show(capsys, "--state", state, "SES Inventory", "Configuration", "--width", "100")
    assert "TMF 638 Username        svc" in configuration.splitlines()
    assert "TMF 638 Password        ********" in configuration.splitlines()
    assert "Cache Update Frequency  3600 s" in configuration.splitlines()
    assert "Active Items Only       Enabled" in configuration.splitlines()
    data = show(capsys, "--state", state, "SES Inventory", "Configuration", "--json")
    for output in (configuration, data, show(capsys, "--state", state, "SES Inventory", "Services")):
        assert not any(password in output for password in SES_PASSWORDS)
    assert "Cache Phase             Idle" in show(capsys, "--state", state, "SES Inventory", "General").splitlines()


def show_error(capsys, *args: str) -> str:
    assert main(["show", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return captured.err


def test_cli_show_errors_are_one_line_naming_what_exists(meter_state, tmp_path, capsys):
    state = str(meter_state)
    assert "no element 'Meter C'" in show_error(capsys, "--state", state, "Meter C")
    assert "elements: 'Meter A' (1/1), 'Meter B' (1/2)" in show_error(capsys, "--state", state, "9/9")
    assert show_error(capsys, "--state", state, "Meter A", "Alarms") == (
        "dmemu: protocol 'Meter' has no page 'Alarms'; pages: 'General', 'Readings', 'Setup', 'Access'\n"
    )
    assert "holds no DataMiner System" in show_error(capsys, "--state", str(tmp_path / "nowhere"))
    (meter_state / "elements" / "1-2.json").write_text("{broken")
    assert "1-2.json is corrupt" in show_error(capsys, "--state", state)
    registry = meter_state / "dms.json"
    registry.write_text(registry.read_text().replace(protocol_path(Meter), "gone_module:Meter"))
    unknown = show_error(capsys, "--state", state)
    assert "protocol 'gone_module:Meter', which cannot be imported (ModuleNotFoundError" in unknown
    assert "--path DIR" in unknown and "protocols=" not in unknown  # a hint the command line can follow
    with pytest.raises(SystemExit) as exited:
        main(["show", "--state", state, "--width", "5"])
    assert exited.value.code == 2 and "too narrow" in capsys.readouterr().err


OWN_PROTOCOL = """
from dmemu.protocol import Number, Page, Parameter, Protocol


class Boiler(Protocol):
    name = "Boiler"
    pages = (Page("General"),)
    parameters = (Parameter(1, "Pressure", Number(0, 10, "bar"), default=2, save=True, page="General"),)
"""


def forget_boilers() -> None:
    """As in a new process: the module not imported, its protocol not defined."""
    sys.modules.pop("boilers", None)
    PROTOCOLS.pop("boilers:Boiler", None)


def test_cli_show_imports_a_users_own_protocol_from_the_current_folder_or_path(tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "boilers.py").write_text(OWN_PROTOCOL)
    with monkeypatch.context() as inside:  # the user's script runs with its own folder importable
        inside.syspath_prepend(str(project))
        from boilers import Boiler

        with DataMinerSystem(tmp_path / "state", VirtualClock()) as dms:
            dms.create_element(Boiler, "Boiler 1")
    state = str(tmp_path / "state")
    try:
        forget_boilers()
        monkeypatch.chdir(project)  # as a user runs `dmemu show` beside their protocol
        assert "Pressure  2 bar" in show(capsys, "--state", state, "Boiler 1", "General")
        forget_boilers()
        monkeypatch.chdir(tmp_path)
        assert "--path DIR" in show_error(capsys, "--state", state, "Boiler 1", "General")
        assert "Pressure  2 bar" in show(capsys, "--state", state, "Boiler 1", "General", "--path", "project")
        assert str(project) not in sys.path  # the import path is the caller's again
    finally:
        forget_boilers()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["demo", "--port", "abc"], "dmemu demo: argument --port: 'abc' is not a whole number"),
        (["demo", "--seed", "one"], "dmemu demo: argument --seed: 'one' is not a whole number"),
        (["simulate", "--churn", "lots"], "dmemu simulate: argument --churn: 'lots' is not a number"),
        (["simulate", "--problem-activity", "-1"], "dmemu simulate: argument --problem-activity: -1 is not a rate from 0 to 100,000 an hour"),
        (["show", "--state", "s", "--rows", "all"], "dmemu show: argument --rows: 'all' is not a whole number"),
        (["show", "--state", "s", "--width", "wide"], "dmemu show: argument --width: 'wide' is not a whole number"),
        (["show", "--state", "s", "Meter A", "General", "Extra"], "dmemu show: unrecognized arguments: Extra (see dmemu show --help)"),
        (["--nope"], "dmemu: unrecognized arguments: --nope (see dmemu --help)"),
    ],
)
def test_cli_usage_mistakes_speak_the_users_words_and_point_to_the_commands_help(args, said, capsys):
    with pytest.raises(SystemExit) as exited:
        main(args)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and err.startswith(said)
    assert "invalid" not in err and "_" not in err.split("(see")[0]  # no argparse type function names
