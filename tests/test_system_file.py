"""System files (`dmemu.system_file`, `dmemu serve --system FILE`): every key read and started,
each kind of mistake one error naming the line and the key with nothing started, and the
examples' files started through the Python API and through the command line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from dmemu import system_file
from dmemu.cli import main
from dmemu.dms import AlarmEventKind, Severity
from dmemu.elements.tm_forum_service_problems import PROFILES_FOLDER
from dmemu.protocol import DmemuError, ElementState, VirtualClock
from dmemu.protocol.storage import REGISTRY_FILE
from dmemu.simulators import Fault
from dmemu.system_file import SimulatorRef, SystemFileError, load_system, start_system

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EXAMPLE_FILES = ("ses_inventory.toml", "ses_service_problems.toml", "tmf_service_problems.toml", "telenet_ticketing.toml")


def _write(folder: Path, text: str, name: str = "system.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only: never through a proxy the environment names
    return session


# -- every key ---------------------------------------------------------------------------------

METER_MODULE = '''
from dmemu.protocol import Discrete, HttpConnection, Number, Parameter, Protocol

class Meter(Protocol):
    name = "System File Meter"
    connection = HttpConnection(default_port=80, credentials=True)
    parameters = (
        Parameter(10, "Level", Number(0, 100, "%"), write=True, default=0, save=True),
        Parameter(11, "Link", Discrete({0: "Down", 1: "Up"}), write=True, default=1),
        Parameter(12, "Endpoint", write=True, default=""),
    )

async def note_alarm(ctx, event):
    return {"alarm": event.alarm.id, "kind": event.kind.value}
'''

EVERY_KEY = f'''
[system]
agents = [7, 8]
licences = ["Ticketing"]
state = "kept-state"
autosave_seconds = 2.5

[clock]
kind = "virtual"
start = 2026-03-01T00:00:00Z
speed = 60

[simulators.tmf]
port = 0
seed = 3
inventory = {{ services = 20, carriers = 4, resources = 10, seed = 5, churn_per_day = 0.1 }}
credentials.tmf638 = {{ username = "inv", password = "pw638" }}
credentials.tmf656 = {{ username = "snow" }}
activity = {{ acknowledge = 1, seed = 2 }}

[[simulators.tmf.faults]]
api = "tmf642"
status = 502
pages = [1, 2]

[simulators.osb]
port = 0
seed = 4
processing_delay = 3
faults = [{{ kind = "nack", operation = "CloseTicketRequest" }}]

[alarm_templates.Meter]
Level = {{ high = {{ Major = 80, Critical = 95 }}, low = {{ Warning = 5 }} }}
11 = {{ discrete = {{ Down = "Critical" }} }}

[scripts."Note Alarm"]
script = "sf_every_key:note_alarm"

[scripts.Flow]
script = "telenet-ticket-flow"
settings = {{ ticket_type = "PLM", attempts = 2 }}

[[elements]]
name = "Meter A"
protocol = "sf_every_key:Meter"
agent = 8
alarm_template = "Meter"
connection = {{ host = "10.0.0.9", port = 8080, bus_address = "BypassProxy", username = "u", password = "p", scheme = "http", timeout = 7.5 }}
parameters = {{ Level = 50, Endpoint = {{ simulator = "tmf", path = "/x" }} }}

[[elements]]
name = "Meter B"
protocol = "sf_every_key:Meter"
start = false

[[elements]]
name = "Problems"
protocol = "tmf-service-problems"
profile = "{PROFILES_FOLDER / "orbital_networks.json"}"
connection = {{ port = {{ simulator = "tmf" }} }}

[[elements]]
name = "Topology"
protocol = "telenet-topology-database"
topology = {{ "Meter A" = "BRU-01/1/1" }}

[[elements]]
name = "Client"
protocol = "telenet-ticket-client"
services = [{{ name = "OSB", host = "127.0.0.1", port = {{ simulator = "osb" }}, path = "/osb/TicketingService", description = "the OSB" }}]
service = "OSB"

[[alarm_rules]]
script = "Note Alarm"
element = "Meter A"
protocol = "System File Meter"
parameter = "Level"
min_severity = "Major"
kinds = ["opened", "cleared"]
'''


def test_every_key_is_read(tmp_path):
    _write(tmp_path, METER_MODULE, "sf_every_key.py")
    description = load_system(_write(tmp_path, EVERY_KEY))
    assert description.agents == (7, 8) and description.licences == {"Ticketing"}
    assert description.state == tmp_path / "kept-state" and description.autosave_seconds == 2.5
    assert description.clock == system_file.ClockSpec("virtual", 1772323200.0, 60.0)
    tmf, osb = description.simulators["tmf"], description.simulators["osb"]
    assert (tmf.port, tmf.seed, tmf.inventory["services"], tmf.activity) == (0, 3, 20, {"acknowledge": 1, "seed": 2})
    assert tmf.credentials == {"tmf638": ("inv", "pw638"), "tmf656": ("snow", "")}
    assert [(f.api, f.status, f.pages) for f in tmf.faults] == [("tmf642", 502, {1, 2})]
    assert (osb.processing_delay, osb.seed, [(f.api, f.kind, f.operation) for f in osb.faults]) == (3, 4, [("osb", "nack", "CloseTicketRequest")])
    assert [script.name for script in description.scripts] == ["Note Alarm", "Flow"]
    meter, meter_b, problems, topology, client = description.elements
    assert (meter.agent, meter.start, meter_b.start) == (8, True, False)
    assert meter.connection == {"host": "10.0.0.9", "port": 8080, "bus_address": "BypassProxy", "username": "u", "password": "p",
                                "scheme": "http", "timeout": 7.5}  # fmt: skip
    assert meter.parameters == {"Level": 50, "Endpoint": SimulatorRef("tmf", "/x")}
    assert meter.alarm_template.name == "Meter" and set(meter.alarm_template.parameters) == {"Level", 11}
    assert problems.options["profile"].customer == "Orbital Networks"
    assert topology.options == {"topology": {"Meter A": "BRU-01/1/1"}}
    assert client.options["service"] == "OSB" and client.options["services"][0]["port"] == SimulatorRef("osb")
    ((rule, script),) = description.alarm_rules
    assert script == "Note Alarm" and rule.element == "Meter A" and rule.min_severity is Severity.MAJOR
    assert rule.kinds == {AlarmEventKind.OPENED, AlarmEventKind.CLEARED} and rule.parameter == "Level"


def test_every_key_is_started_and_stopped(tmp_path):
    _write(tmp_path, METER_MODULE, "sf_every_key.py")
    description = load_system(_write(tmp_path, EVERY_KEY))
    clock = VirtualClock(1772323200.0)  # a harness's own clock: the file's speed does not move it
    with start_system(description, clock=clock) as running:
        dms = running.dms
        assert running.state == tmp_path / "kept-state"
        assert dms.agent_ids == (7, 8) and dms.licences == {"Ticketing"}
        tmf, osb = running.simulators["tmf"], running.simulators["osb"]
        meter = dms.element("Meter A")
        assert meter.agent_id == 8 and meter.connection.port == 8080 and meter.connection.timeout == 7.5
        assert meter.get("Endpoint") == f"{tmf.base_url}/x" and meter.get("Level") == 50
        assert dms.element("Meter B").state is ElementState.STOPPED
        assert dms.element("Problems").connection.port == tmf.port
        assert dms.element("Topology").table("Topology").keys() == ["Meter A"]
        client = dms.element("Client")
        assert client.table("Service Info Table").row("OSB")["Port"] == osb.port and client.get("Service Selection") == "OSB"
        assert [f.status for f in tmf.faults.faults] == [502] and [f.kind for f in osb.faults.faults] == ["nack"]
        assert osb.processing_delay == 3 and tmf.credentials["tmf638"] == ("inv", "pw638")
        meter.set("Level", 90)  # Major: the template alarms, the rule starts the script
        (alarm,) = dms.alarms.active(element="Meter A")
        assert alarm.severity is Severity.MAJOR
        (run,) = dms.automation.runs("Note Alarm")
        run.wait()
        assert run.result == {"alarm": alarm.id, "kind": "opened"}
        meter.set("Link", 0)  # by id in the template: Critical, but not the rule's parameter
        assert len(dms.automation.runs("Note Alarm")) == 1
        assert clock.now() == 1772323200.0  # nothing moved the harness's clock
        group = running.simulator_group  # what the console shows: a fault goes to the simulator of its api
        group.faults.add(Fault(api="osb", status=500), Fault(api="tmf639", status=504))
        assert [(f.kind, f.status) for f in osb.faults.faults] == [("nack", 503), ("status", 500)]
        assert [f.api for f in tmf.faults.faults] == ["tmf642", "tmf639"]
        assert [f.api for f in group.faults.faults] == ["tmf642", "tmf639", "osb", "osb"]
        group.faults.clear()
        assert group.faults.faults == [] and group.requests() == sorted(group.requests(), key=lambda record: record.time)
    assert (tmp_path / "kept-state" / REGISTRY_FILE).exists()  # kept
    # The kept state: a second start picks the elements up as saved, instead of creating them again.
    with start_system(description, clock=VirtualClock(1772323200.0)) as running:
        assert running.dms.element("Meter A").get("Level") == 90
        assert [e.name for e in running.dms.elements].count("Meter A") == 1


def test_a_virtual_clock_at_a_speed_moves_on_its_own_and_the_real_clock_is_the_default(tmp_path):
    paced = load_system(_write(tmp_path, '[clock]\nkind = "virtual"\nstart = 1000\nspeed = 100000\n'))
    with start_system(paced) as running:
        assert isinstance(running.clock, VirtualClock)
        for _ in range(500):  # the pacing is by the wall clock: wait for its first step
            if running.clock.now() > 1000:
                break
            time.sleep(0.01)
        assert running.clock.now() > 1000
    standing = load_system(_write(tmp_path, '[clock]\nkind = "virtual"\n'))
    with start_system(standing) as running:
        assert running.clock.now() == VirtualClock().now()
    with start_system(load_system(_write(tmp_path, ""))) as running:
        assert type(running.clock).__name__ == "RealClock" and running.state.exists()
        temporary = running.state
    assert not temporary.exists()  # a temporary state directory is gone at the end


# -- mistakes ----------------------------------------------------------------------------------

MISTAKES = [
    ("unknown key", '[system]\nagents = [1]\n\n[[elements]]\nname = "A"\nprotocol = "ses-inventory"\nconection = { port = 1 }\n',
     7, "elements[1].conection", "unknown key; did you mean 'connection'?"),
    ("unknown table", "[sytem]\n", 1, "sytem", "did you mean 'system'?"),
    ("wrong type", '[system]\nagents = "1"\n', 2, "system.agents", "must be an array of agent ids, not text '1'"),
    ("wrong type in a table", '[[elements]]\nname = "A"\nprotocol = "ses-inventory"\n[elements.connection]\ntimeout = "soon"\n',
     5, "elements[1].connection.timeout", "timeout"),
    ("unknown protocol", '[[elements]]\nname = "A"\nprotocol = "ses-inventroy"\n', 3, "elements[1].protocol",
     "'ses-inventroy' is not a known connector; did you mean 'ses-inventory'?"),
    ("bad port", '[[elements]]\nname = "A"\nprotocol = "ses-inventory"\n\n[[elements]]\nname = "B"\nprotocol = "ses-inventory"\n'
                 'connection = { host = "x", port = 70000 }\n', 8, "elements[2].connection.port", "must be a port from 1 to 65535"),
    ("bad simulator port", "[simulators.osb]\nport = -1\n", 2, "simulators.osb.port", "must be a port from 0"),
    ("unknown simulator reference", '[simulators.tmf]\n\n[[elements]]\nname = "A"\nprotocol = "ses-inventory"\n'
                                    'connection = { port = { simulator = "osb" } }\n',
     6, "elements[1].connection.port.simulator", "no simulator 'osb' is started (started: tmf"),
    ("unknown simulator in a value", '[[elements]]\nname = "A"\nprotocol = "ses-inventory"\n[elements.parameters]\n'
                                     '"TMF 639 Endpoint" = { simulator = "tmf", path = "/x" }\n',
     5, 'elements[1].parameters."TMF 639 Endpoint".simulator', "no simulator 'tmf' is started (started: none"),
    ("unknown simulator kind", "[simulators.tmff]\n", 1, "simulators.tmff", "did you mean 'tmf'?"),
    ("duplicate element name", '[[elements]]\nname = "A"\nprotocol = "ses-inventory"\n[[elements]]\nname = "A"\nprotocol = "heartbeat-receiver"\n',
     5, "elements[2].name", "an element named 'A' is given before"),
    ("bad TOML", '[system]\nagents = [1, 2]\nagents = [3]\n', 3, "", "not valid TOML"),
    ("bad TOML at the end", "[system]\nagents = [1\n", 2, "", "not valid TOML: Unclosed array"),
    ("refused first value", '[[elements]]\nname = "A"\nprotocol = "ses-inventory"\n[elements.parameters]\n"Cache Update Frequency" = 5\n',
     5, 'elements[1].parameters."Cache Update Frequency"', "out of range"),
    ("unknown parameter", '[[elements]]\nname = "A"\nprotocol = "ses-inventory"\nparameters = { "Cache Update Frequncy" = 5000 }\n',
     4, 'elements[1].parameters."Cache Update Frequncy"', "did you mean 'Cache Update Frequency'?"),
    ("read parameter", '[[elements]]\nname = "A"\nprotocol = "ses-inventory"\nparameters = { "Cache Phase" = 1 }\n',
     4, 'elements[1].parameters."Cache Phase"', "is not a write parameter"),
    ("missing name", '[[elements]]\nprotocol = "ses-inventory"\n', 1, "elements[1]", "'name' is missing"),
    ("unknown agent", '[system]\nagents = [1]\n[[elements]]\nname = "A"\nprotocol = "ses-inventory"\nagent = 2\n',
     6, "elements[1].agent", "agent 2 is not one of the system's agents [1]"),
    ("limits out of order", '[alarm_templates.T]\nSignal = { high = { Major = 10, Critical = 5 } }\n', 2, "alarm_templates.T.Signal",
     "Critical high limit 5 must be above Major high limit 10"),
    ("unknown severity", '[alarm_templates.T]\nSignal = { high = { Majr = 10 } }\n', 2, "alarm_templates.T.Signal.high.Majr",
     "did you mean 'Major'?"),
    ("template that does not fit", '[alarm_templates.T]\n"Cache Update Frequency" = { discrete = { x = "Major" } }\n'
                                   '[[elements]]\nname = "A"\nprotocol = "ses-inventory"\nalarm_template = "T"\n',
     6, "elements[1].alarm_template", "discrete severities need a Discrete or String"),
    ("parameter named twice in a template", '[alarm_templates.T]\n7 = { high = { Major = 10, Critical = 5 } }\n07 = { high = { Major = 1 } }\n',
     3, "alarm_templates.T.07", "names parameter 7, already named by '7'"),
    ("template problem at its own key", '[alarm_templates.T]\n07 = { high = { Major = 1 } }\n7 = { high = { Major = 10, Critical = 5 } }\n',
     3, "alarm_templates.T.7", "names parameter 7, already named by '07'"),
    ("first value named by id and name", '[[elements]]\nname = "A"\nprotocol = "ses-inventory"\n[elements.parameters]\n'
                                         '106 = 7200\n"Cache Update Frequency" = 3600\n',
     6, 'elements[1].parameters."Cache Update Frequency"', "names parameter 106 (Cache Update Frequency), already named by '106'"),
    ("bad scalar in a multi-line array", '[system]\nlicences = [\n  "Ticketing",  # a comment, with ]\n  "Automation", "Tick,]et",\n]\n',
     4, "system.licences[3]", "'Tick,]et' is not a DataMiner licence"),
    ("bad scalar after an array's opening line", '[scripts.F]\nscript = "telenet-ticket-flow"\n[[alarm_rules]]\nscript = "F"\n'
                                                 'kinds = ["opened", "cleared",\n  "clear"]\n',
     6, "alarm_rules[1].kinds[3]", "did you mean 'cleared'?"),
    ("unknown template", '[[elements]]\nname = "A"\nprotocol = "ses-inventory"\nalarm_template = "Nope"\n', 4,
     "elements[1].alarm_template", "no alarm template 'Nope'"),
    ("bad fault", '[simulators.tmf]\n[[simulators.tmf.faults]]\napi = "tmf638"\nstatus = 200\n', 4, "simulators.tmf.faults[1].status",
     "not an HTTP error status"),
    ("unknown script", '[[alarm_rules]]\nscript = "Flow"\n', 2, "alarm_rules[1].script", "no script 'Flow' is registered here"),
    ("unknown script kind", '[scripts.F]\nscript = "telenet-tiket-flow"\n', 2, "scripts.F.script", "did you mean 'telenet-ticket-flow'?"),
    ("unknown setting", '[scripts.F]\nscript = "telenet-ticket-flow"\nsettings = { retry_intervall = 3 }\n', 3,
     "scripts.F.settings.retry_intervall", "did you mean 'retry_interval'?"),
    ("unknown event kind", '[scripts.F]\nscript = "telenet-ticket-flow"\n[[alarm_rules]]\nscript = "F"\nkinds = ["opened", "clear"]\n',
     5, "alarm_rules[1].kinds[2]", "did you mean 'cleared'?"),
    ("speed on the real clock", "[clock]\nspeed = 2\n", 2, "clock.speed", "is for a virtual clock"),
    ("unknown licence", '[system]\nlicences = ["Ticket"]\n', 2, "system.licences[1]", "did you mean 'Ticketing'?"),
    ("module that cannot be imported", '[[elements]]\nname = "A"\nprotocol = "no_such_module:Thing"\n', 3, "elements[1].protocol",
     "cannot import 'no_such_module'"),
    ("service of a simulator not started", '[simulators.osb]\n[[elements]]\nname = "C"\nprotocol = "telenet-ticket-client"\n'
                                           'services = [\n  { name = "OSB", port = 1 },\n  { name = "X", port = { simulator = "tmf" } },\n]\n',
     7, "elements[1].services[2].port.simulator", "no simulator 'tmf' is started"),
    ("credentials the protocol does not take", '[[elements]]\nname = "A"\nprotocol = "heartbeat-receiver"\n[elements.connection]\n'
                                               'username = "u"\n', 5, "elements[1].connection.username", "takes no credentials"),
    ("connector option of another connector", '[[elements]]\nname = "A"\nprotocol = "ses-inventory"\ntopology = {}\n', 4,
     "elements[1].topology", "unknown key"),
]  # fmt: skip


@pytest.mark.parametrize(("mistake", "text", "line", "key", "reason"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_is_one_error_naming_the_line_and_the_key(tmp_path, mistake, text, line, key, reason):
    path = _write(tmp_path, text)
    with pytest.raises(SystemFileError) as raised:
        load_system(path)
    error = raised.value
    assert (error.line, error.key) == (line, key)
    assert str(error).startswith(f"{path}:{line}: {key + ': ' if key else ''}")
    assert reason in str(error) and "\n" not in str(error)


def test_a_wrong_file_on_the_command_line_is_one_line_and_nothing_starts(tmp_path, capsys, monkeypatch):
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("something started")

    for name in ("Simulators", "OsbService", "DataMinerSystem"):
        monkeypatch.setattr(system_file, name, refuse)
    path = _write(tmp_path, '[system]\nstate = "state"\n[simulators.osb]\n[[elements]]\nname = "A"\nprotocol = "ses-inventroy"\n')
    assert main(["serve", "--system", str(path), "--port", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"dmemu: {path}:6: elements[1].protocol: 'ses-inventroy' is not a known connector; did you mean 'ses-inventory'? " \
                           "(known: ses-inventory, ses-service-problems, tmf-service-problems, heartbeat-receiver, telenet-topology-database, " \
                           "telenet-ticket-gateway, telenet-ticket-client; or \"module:Class\")\n"  # fmt: skip
    assert not (tmp_path / "state").exists()
    assert main(["serve", "--system", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml: cannot be read" in capsys.readouterr().err


def test_serve_takes_a_state_or_a_system_file_not_both(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--state", str(tmp_path), "--system", str(tmp_path / "x.toml")])
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


# -- the examples, through the Python API ------------------------------------------------------


def _inventory_works(running: system_file.RunningSystem, clock: VirtualClock) -> None:
    element = running.dms.element("SES Inventory")
    assert [row["Result"] for row in element.table("Cache Progress").rows()] == ["OK", "OK", "OK"]
    assert len(element.table("Services")) > 0 and not running.dms.alarms.active()


def _problems_work(ticket_type: str) -> Callable[[system_file.RunningSystem, VirtualClock], None]:
    def check(running: system_file.RunningSystem, clock: VirtualClock) -> None:
        (element,) = running.dms.elements
        fields = {"Description": "Carrier unlocked", "Priority": "2"}
        if ticket_type != "SES Service Problem":
            fields.update({"Site Category": "gold", "SLA Minutes": 240, "Beam": "B7", "Outage Start": "2026-01-01T00:00:30Z"})
        ticket = running.dms.tickets.create(ticket_type, fields)
        clock.advance(61)
        problem_id = element.table("Managed Tickets").row(ticket.id)["Service Problem ID"]
        assert running.simulators["tmf"].problems.get(problem_id)["description"] == "Carrier unlocked"

    return check


def _telenet_works(running: system_file.RunningSystem, clock: VirtualClock) -> None:
    dms = running.dms
    dms.element("Router 2").set("Signal Loss", 35)
    (run,) = dms.automation.runs("Telenet Ticket Flow")
    run.wait(timeout=600)
    assert run.result["action"] == "created", run.error
    (ticket,) = running.simulators["osb"].tickets()
    assert (ticket.network_element, ticket.severity, ticket.path_details) == ("Router 2", "Major", "ANT-02/slot 4/port 2")
    assert dms.alarms.active(element="Router 2")[0].properties["Ticket ID"] == ticket.ticket_id


EXAMPLE_CHECKS = {
    "ses_inventory.toml": _inventory_works,
    "ses_service_problems.toml": _problems_work("SES Service Problem"),
    "tmf_service_problems.toml": _problems_work("Orbital Networks Service Problem"),
    "telenet_ticketing.toml": _telenet_works,
}


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_an_example_file_starts_through_the_python_api(name):
    description = load_system(EXAMPLES / name)
    clock = VirtualClock()
    with start_system(description, clock=clock) as running:
        assert [element.name for element in running.dms.elements] == [spec.name for spec in description.elements]
        assert all(element.state is ElementState.ACTIVE for element in running.dms.elements)
        EXAMPLE_CHECKS[name](running, clock)
        with running.serve() as server, _http() as http:
            answer = http.get(f"{server.url}/api/elements", headers={"X-Dmemu-Token": server.token})
            assert [e["name"] for e in answer.json()["elements"]] == [spec.name for spec in description.elements]
            simulators = http.get(f"{server.url}/api/simulators", headers={"X-Dmemu-Token": server.token}).json()
            assert simulators["base_url"] == ", ".join(sim.base_url for sim in running.simulators.values())


# -- the examples, through the command line ------------------------------------------------------


def _until(what: str, check: Callable[[], Any], seconds: float = 60.0) -> Any:
    """What `check` answers once it is truthy; the server runs on the wall clock, so look again
    a little later, up to a generous limit (never an assertion on how long it took)."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.1)


def _served_inventory(api: Callable[..., Any]) -> None:
    rows = _until("the cache built", lambda: [r for r in api("GET", "elements/SES%20Inventory/tables/Cache%20Progress")["rows"]
                                              if r["display"][-2] == "OK"] or None)  # fmt: skip
    assert len(rows) == 3
    assert [fault["api"] for fault in api("GET", "simulators/faults")["faults"]] == ["tmf642"]


def _served_problems(element: str) -> Callable[[Callable[..., Any]], None]:
    def check(api: Callable[..., Any]) -> None:
        api("POST", f"elements/{quote(element)}/buttons/Synchronize%20Now")
        status = _until("a synchronisation", lambda: api("GET", f"elements/{quote(element)}/parameters/Synchronization%20Status")["display"] == "OK")
        assert status

    return check


def _served_telenet(api: Callable[..., Any]) -> None:
    assert api("PUT", "elements/Router%201/parameters/Signal%20Loss", json={"value": 35})["value"] == 35

    def ticket_id() -> str | None:
        alarms = api("GET", "alarms?element=Router%201")["alarms"]
        return alarms[0]["properties"].get("Ticket ID") if alarms else None

    assert re.fullmatch(r"MO-\d{6}", _until("the flow's ticket", ticket_id))


SERVED_CHECKS = {
    "ses_inventory.toml": _served_inventory,
    "ses_service_problems.toml": _served_problems("SES Service Problems"),
    "tmf_service_problems.toml": _served_problems("Orbital Problems"),
    "telenet_ticketing.toml": _served_telenet,
}


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_an_example_file_is_served_by_dmemu_serve_until_ctrl_c(name):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "dmemu.cli", "serve", "--system", str(EXAMPLES / name)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        printed = []
        for line in process.stdout:
            printed.append(line)
            if line.startswith("  console: "):
                break
        text = "".join(printed)
        url = re.search(r"on (http://127\.0\.0\.1:\d+) \(Ctrl-C stops\)", text).group(1)
        token = re.search(r"token: (\S+)", text).group(1)
        assert f"console: {url}/#token={token}" in text
        with _http() as http:

            def api(method: str, route: str, **kwargs: Any) -> Any:
                answer = http.request(method, f"{url}/api/{route}", headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs)
                assert answer.ok, answer.text
                return answer.json()

            names = [spec.name for spec in load_system(EXAMPLES / name).elements]
            elements = api("GET", "elements")["elements"]
            assert [e["name"] for e in elements] == names and {e["state"] for e in elements} == {"Active"}
            SERVED_CHECKS[name](api)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert out.splitlines()[-1] == "stopped"


def test_the_readme_system_file_starts(tmp_path):
    (block,) = re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.DOTALL)
    description = load_system(_write(tmp_path, block))
    with start_system(description, clock=VirtualClock()) as running:
        inventory = running.dms.element("SES Inventory")
        assert [row["Result"] for row in inventory.table("Cache Progress").rows()] == ["OK", "OK", "OK"]
        assert running.state == tmp_path / "state"


def test_a_kept_element_of_another_protocol_is_refused_before_anything_starts(tmp_path, monkeypatch):
    first = _write(tmp_path, '[system]\nstate = "state"\n[[elements]]\nname = "A"\nprotocol = "heartbeat-receiver"\n', "first.toml")
    with start_system(load_system(first), clock=VirtualClock()):
        pass
    second = load_system(_write(tmp_path, '[system]\nstate = "state"\n[simulators.osb]\n[[elements]]\nname = "A"\n'
                                          'protocol = "telenet-ticket-gateway"\n', "second.toml"))  # fmt: skip
    monkeypatch.setattr(system_file, "OsbService", lambda *args, **kwargs: pytest.fail("a simulator started"))
    with pytest.raises(DmemuError, match=r"element 'A' is of protocol .*TelenetTicketGateway there, but .*state keeps it as "
                                         r".*GenericDynamicHeartbeatReceiver"):  # fmt: skip
        with start_system(second, clock=VirtualClock()):
            pass
