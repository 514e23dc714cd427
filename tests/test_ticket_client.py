"""The Telenet Ticket Client: its Service Info Table (CSV only), Service Selection, the lock,
searches over its serial connection to the selected OSB service, the Communication - Response
Table, Busy status, Gateway forwarding, heartbeats and the topology copied when it starts.

Everything runs on a virtual clock against the OSB simulator and elements on loopback; the
Gateway here is a stand-in that answers as the contract says, so each reply can be chosen."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from dmemu.dms import DataMinerSystem
from dmemu.elements.heartbeat_receiver import OK as HEARTBEAT_OK
from dmemu.elements.heartbeat_receiver import GenericDynamicHeartbeatReceiver
from dmemu.elements.telenet import ticket_client
from dmemu.elements.telenet.service_info import (
    SERVICE_INFO_COLUMNS,
    ServiceInfo,
    ServiceInfoCsvError,
    parse_service_csv,
    service_csv_text,
)
from dmemu.elements.telenet.ticket_client import (
    BUSY,
    LOCKED,
    NOT_BUSY,
    UNLOCKED,
    ManualSetRefusedError,
    ServiceSelectionError,
    TelenetTicketClient,
    command_message,
    lock_message,
)
from dmemu.elements.telenet.ticket_gateway import TelenetTicketGateway
from dmemu.elements.telenet.topology_database import TelenetTopologyDatabase
from dmemu.protocol import (
    BYPASS_PROXY,
    Connection,
    InvalidValueError,
    LogType,
    Parameter,
    Protocol,
    QAction,
    QActionFailedError,
    ReadOnlyParameterError,
    String,
)
from dmemu.simulators import OsbService

HEADER = ",".join(SERVICE_INFO_COLUMNS)


def services_csv(path: Path, *services: tuple[str, int], extra: str = "") -> Path:
    lines = [HEADER] + [f"{name},127.0.0.1,{port},/osb/TicketingService,{name} service" for name, port in services]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


# -- a stand-in Ticket Gateway: keeps each request, answers when the test says ---------------------

GATEWAY_REQUESTS: list = []


def keep_request(protocol):
    GATEWAY_REQUESTS.append((protocol.element_name, protocol.request))


class StandInGateway(Protocol):
    name = "Stand-in Ticket Gateway"
    parameters = (Parameter(10, "Ticket Request", String(), write=True, default=""),)
    qactions = (QAction(1, keep_request, triggers=(10,)),)


def answer(dms, request, body=None, error=None):
    """The Gateway's reply to `request`, as its QAction would set it."""
    from dmemu.protocol import Reply

    address = request.reply_to
    dms.element(address.element).set(address.parameter, Reply(request.id, body, error).to_json())


@pytest.fixture(autouse=True)
def forget_gateway_requests():
    GATEWAY_REQUESTS.clear()
    yield
    GATEWAY_REQUESTS.clear()


@pytest.fixture
def osb(dmemu_clock):
    with OsbService(clock=dmemu_clock.now) as service:
        yield service


def make_client(dms: DataMinerSystem, tmp_path: Path, osb: OsbService, name: str = "Client 1", **parameters) -> object:
    csv = services_csv(tmp_path / f"{name}.csv", ("OSB", osb.port))
    client = dms.create_element(
        TelenetTicketClient, name, connection=Connection(host="127.0.0.1", port=8650),
        parameters={"CSV File Path": str(csv), "Ticket Gateway Element": "Gateway", **parameters},
    )  # fmt: skip
    client.raise_on_failure = True
    client.set("Import CSV", 1)
    client.set("Service Selection", "OSB")
    return client


def lock(client, guid: str) -> dict:
    client.set("Lock Request", lock_message("lock", guid))
    return json.loads(client.get("Lock Reply"))


def release(client, guid: str) -> dict:
    client.set("Lock Request", lock_message("release", guid))
    return json.loads(client.get("Lock Reply"))


def command(client, guid: str, command_id: str, kind: str, **fields) -> dict:
    client.set("Client Command", command_message(guid, command_id, kind, **fields))
    return json.loads(client.get("Client Command Reply"))


def search(client, guid: str, command_id: str, network_element: str = "ne-1", **fields) -> dict:
    return command(client, guid, command_id, "search", ticket_type="MO", network_element=network_element, **fields)


# --------------------------------------------------------------------------------------------
# The Service Info Table: CSV import and export only


def test_an_exported_table_imports_as_the_same_table_and_the_same_text(dms, tmp_path, osb):
    source = tmp_path / "services.csv"
    source.write_text(
        "Port,Service Name,Host,Path,Description\n"  # any column order
        '8650,OSB Production,osb.telenet.be,/osb/TicketingService,"Telenet SAM, production"\n'
        "\n"  # a blank line
        '9650,OSB Test,10.0.0.5,/osb/test,"quoted ""name"""\n',
        encoding="utf-8-sig",  # a byte order mark is allowed
    )
    client = dms.create_element(TelenetTicketClient, "Client 1", connection=Connection(host="127.0.0.1", port=8650),
                                parameters={"CSV File Path": str(source)})  # fmt: skip
    client.raise_on_failure = True
    client.set("Import CSV", 1)
    rows = client.table("Service Info Table").rows()
    assert rows == [
        {"Service Name": "OSB Production", "Host": "osb.telenet.be", "Port": 8650, "Path": "/osb/TicketingService", "Description": "Telenet SAM, production"},
        {"Service Name": "OSB Test", "Host": "10.0.0.5", "Port": 9650, "Path": "/osb/test", "Description": 'quoted "name"'},
    ]
    exported = tmp_path / "exported.csv"
    client.set("CSV File Path", str(exported))
    client.set("Export CSV", 1)
    assert client.get("CSV Status") == f"Exported 2 services to {exported}"
    text = exported.read_text(encoding="utf-8")
    assert text.splitlines()[0] == HEADER
    client.set("Import CSV", 1)
    assert client.table("Service Info Table").rows() == rows
    client.set("Export CSV", 1)
    assert exported.read_text(encoding="utf-8") == text
    assert service_csv_text(parse_service_csv(text.encode())) == text


MALFORMED = {
    "missing header column": (b"Service Name,Host,Port,Path\nA,h,1,/p\n", 1, "lacks column(s) ['Description']"),
    "unknown header column": (f"{HEADER},Owner\nA,h,1,/p,,me\n".encode(), 1, "unknown column(s) ['Owner']"),
    "bad port": (f"{HEADER}\nA,h,1,/p,\nB,h,86500,/p,\n".encode(), 3, "service 'B': Port '86500' is not a whole number from 1 to 65535"),
    "port not a number": (f"{HEADER}\nA,h,eighty,/p,\n".encode(), 2, "Port 'eighty'"),
    "duplicate name": (f"{HEADER}\nA,h,1,/p,\nB,h,2,/p,\nA,h,3,/p,\n".encode(), 4, "service 'A' is already listed on line 2"),
    "empty name": (f"{HEADER}\nA,h,1,/p,\n  ,h,2,/p,\n".encode(), 3, "the Service Name is empty"),
    "too few fields": (f"{HEADER}\nA,h,1,/p\n".encode(), 2, "4 fields where the header has 5"),
    "too many fields": (f"{HEADER}\nA,h,1,/p,,x\n".encode(), 2, "6 fields where the header has 5"),
    "bad encoding": (f"{HEADER}\nA,h,1,/p,\nB,h\N{LATIN SMALL LETTER E WITH ACUTE},2,/p,\n".encode("latin-1"), 3, "not UTF-8 text"),
    "empty host": (f"{HEADER}\nA,,1,/p,\n".encode(), 2, "the Host is empty"),
    "host with a space": (f"{HEADER}\nA,h,1,/p,\nB,osb .telenet.be,2,/p,\n".encode(), 3, "service 'B': connection host='osb .telenet.be'"),
    "host with another scheme": (f"{HEADER}\nA,ftp://h,1,/p,\n".encode(), 2, "a scheme written in the host is one of http, https"),
    "relative path": (f"{HEADER}\nA,h,1,osb,\n".encode(), 2, "Path 'osb' does not start with '/'"),
    "no service": (f"{HEADER}\n".encode(), 0, "the file lists no service"),
    "empty file": (b"", 0, "the file is empty"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_csv_is_refused_with_file_line_and_reason_and_the_table_is_unchanged(dms, tmp_path, osb, case):
    data, line, reason = MALFORMED[case]
    client = make_client(dms, tmp_path, osb)
    before = client.table("Service Info Table").rows()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(data)
    client.set("CSV File Path", str(bad))
    with pytest.raises(QActionFailedError) as raised:
        client.set("Import CSV", 1)
    error = raised.value.__cause__
    assert isinstance(error, ServiceInfoCsvError)
    assert (error.path, error.line) == (str(bad), line)
    assert reason in error.reason
    assert str(error).startswith(f"Service Info CSV {bad}" + (f", line {line}: " if line else ": "))
    assert client.table("Service Info Table").rows() == before
    assert client.get("Selected Service") == "OSB"
    assert client.get("CSV Status").startswith("Import refused: ") and client.get("CSV Status").endswith("the Service Info Table is unchanged")
    assert any(reason in entry.message for entry in client.logs(LogType.ERROR))


def test_an_unreadable_file_and_an_unwritable_export_say_so(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    client.set("CSV File Path", str(tmp_path / "missing.csv"))
    with pytest.raises(QActionFailedError, match="missing.csv: cannot be read"):
        client.set("Import CSV", 1)
    client.set("CSV File Path", str(tmp_path / "no such folder" / "out.csv"))
    with pytest.raises(QActionFailedError, match="cannot be written"):
        client.set("Export CSV", 1)
    assert client.table("Service Info Table").keys() == ["OSB"]


def test_the_table_has_no_write_column_so_only_an_import_changes_it(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    before = client.table("Service Info Table").rows()
    for column in SERVICE_INFO_COLUMNS[1:]:
        with pytest.raises(ReadOnlyParameterError, match=f"column .* {column!r} is read-only"):
            client.set_cell("Service Info Table", "OSB", column, 1 if column == "Port" else "changed")
    assert client.table("Service Info Table").rows() == before
    assert ServiceInfo.from_row(ServiceInfo("A", "h", 1, "/p", "d").row()) == ServiceInfo("A", "h", 1, "/p", "d")


# --------------------------------------------------------------------------------------------
# Service Selection and the serial connection's target


def test_service_selection_takes_a_listed_service_and_refuses_any_other(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    assert client.get("Active Service") == f"OSB (127.0.0.1:{osb.port}/osb/TicketingService)"
    with pytest.raises(QActionFailedError) as raised:
        client.set("Service Selection", "OSB Backup")
    assert isinstance(raised.value.__cause__, ServiceSelectionError)
    assert "'OSB Backup' refused: the Service Info Table lists 'OSB'" in str(raised.value.__cause__)
    assert (client.get("Service Selection"), client.get("Selected Service")) == ("OSB", "OSB")


def test_an_import_that_drops_the_selected_service_leaves_none_selected(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    other = services_csv(tmp_path / "other.csv", ("OSB Backup", osb.port))
    client.set("CSV File Path", str(other))
    client.set("Import CSV", 1)
    assert (client.get("Service Selection"), client.get("Selected Service"), client.get("Active Service")) == ("", "", "")
    assert "no longer listed" in client.get("CSV Status")
    assert lock(client, "g1")["granted"]
    reply = search(client, "g1", "c1")
    assert not reply["ok"] and "no ticketing service is selected" in reply["error"]
    assert not reply["retryable"]


def test_searches_go_to_the_selected_service_not_the_elements_own_address(dms, dmemu_clock, tmp_path, osb):
    with OsbService(clock=dmemu_clock.now) as backup:
        backup.add_ticket("MO", "ne-1", alarm_id="7", severity="Minor")
        client = make_client(dms, tmp_path, osb)  # its own address, 127.0.0.1:8650, is a placeholder
        both = services_csv(tmp_path / "both.csv", ("OSB", osb.port), ("OSB Backup", backup.port))
        client.set("CSV File Path", str(both))
        client.set("Import CSV", 1)
        lock(client, "g1")
        assert search(client, "g1", "c1")["tickets"] == []
        client.set("Service Selection", "OSB Backup")
        reply = search(client, "g1", "c2")
        assert [ticket["ticket_id"] for ticket in reply["tickets"]] == ["MO-000001"]
        assert [len(osb.requests()), len(backup.requests())] == [1, 1]
        assert client.table("Communication - Response Table").column("Service") == {"c1": "OSB", "c2": "OSB Backup"}


# --------------------------------------------------------------------------------------------
# The lock


def test_a_free_client_is_locked_by_one_flow_and_refused_to_another(dms, dmemu_clock, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    assert lock(client, "flow-a") == {"action": "lock", "guid": "flow-a", "granted": True, "reason": ""}
    assert (client.get("Lock Status"), client.get("LockGuidId"), client.get("Lock Time")) == (LOCKED, "flow-a", dmemu_clock.now())
    dmemu_clock.advance(10)
    refused = lock(client, "flow-b")
    assert not refused["granted"] and refused["reason"] == "locked by flow flow-a for 10 s"
    assert client.get("LockGuidId") == "flow-a"
    assert release(client, "flow-a")["granted"]
    assert (client.get("Lock Status"), client.get("LockGuidId"), client.get("Lock Time")) == (UNLOCKED, "", None)
    assert lock(client, "flow-b")["granted"]


def test_a_release_or_command_with_a_stale_guid_is_refused(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    refused = release(client, "nobody")
    assert not refused["granted"] and refused["reason"] == "stale GUID: the client is not locked"
    lock(client, "flow-a")
    refused = release(client, "flow-b")
    assert not refused["granted"] and refused["reason"] == "stale GUID: the lock is held by flow flow-a"
    reply = search(client, "flow-b", "c1")
    assert not reply["ok"] and reply["error"] == "stale GUID flow-b: the lock is held by flow flow-a"
    assert client.get("LockGuidId") == "flow-a"
    assert len(osb.requests()) == 0  # nothing was sent on a stale GUID's behalf
    assert any("refused (stale GUID)" in entry.message for entry in client.logs(LogType.ERROR))


def test_a_lock_expires_when_its_flow_goes_quiet_and_the_client_is_used_again(dms, dmemu_clock, tmp_path, osb):
    client = make_client(dms, tmp_path, osb, **{"Lock Expiry Time": 60})
    lock(client, "dead-flow")
    dmemu_clock.advance(30)
    search(client, "dead-flow", "c1")  # a command renews the lease
    dmemu_clock.advance(40)
    assert not lock(client, "flow-b")["granted"]  # 40 s since the last command: still held
    dmemu_clock.advance(25)  # the expiry check (every 5 s) frees it
    assert (client.get("Lock Status"), client.get("LockGuidId")) == (UNLOCKED, "")
    assert any("the lock of flow dead-flow expired: no command for 6" in entry.message for entry in client.logs(LogType.ERROR))
    assert lock(client, "flow-b")["granted"]
    reply = search(client, "dead-flow", "c2")
    assert not reply["ok"] and "stale GUID dead-flow" in reply["error"]


def test_an_expired_lock_is_taken_over_at_once_by_a_lock_request(dms, dmemu_clock, tmp_path, osb):
    client = make_client(dms, tmp_path, osb, **{"Lock Expiry Time": 7})
    lock(client, "dead-flow")
    dmemu_clock.skip_to(dmemu_clock.now() + 8)  # no timer has run yet
    assert client.get("LockGuidId") == "dead-flow"
    assert lock(client, "flow-b")["granted"]
    assert any("expired (8 s without a command) and was taken by flow flow-b" in entry.message for entry in client.logs(LogType.ERROR))


def test_a_lock_waiting_for_the_gateway_lasts_the_gateways_result_timeout_longer_then_expires(dms, dmemu_clock, tmp_path, osb):
    osb.processing_delay = 10_000  # the result would come long after the flow died
    gateway = dms.create_element(TelenetTicketGateway, "Gateway", connection=Connection(port=osb.port, bus_address=BYPASS_PROXY, timeout=5),
                                 parameters={"Result Timeout": 100})  # fmt: skip
    client = make_client(dms, tmp_path, osb, **{"Lock Expiry Time": 60})
    lock(client, "dead-flow")
    fields = {"alarm_id": "5", "network_element": "ne-1", "severity": "Major", "path_details": "p", "description": "d"}
    reply = command(client, "dead-flow", "c1", "ticket", operation="create", ticket_type="MO", fields=fields)
    assert reply["stage"] == "ack"  # the Gateway's ACK renewed the lock
    gateway.stop()  # and will not answer again: the flow waits, then dies
    dmemu_clock.advance(150)
    assert client.get("LockGuidId") == "dead-flow"  # Lock Expiry Time passed, but the Gateway may still answer
    dmemu_clock.advance(15)  # Lock Expiry Time + Result Timeout since the last renewal: a dead flow's lock
    assert (client.get("Lock Status"), client.get("LockGuidId"), client.get("Pending Gateway Request")) == (UNLOCKED, "", "")
    reply = json.loads(client.get("Client Command Reply"))
    assert (reply["id"], reply["ok"], reply["error"]) == ("c1", False, "abandoned: the lock of flow dead-flow expired")
    assert lock(client, "flow-b")["granted"]


def test_a_lock_waiting_for_a_gateway_that_is_gone_expires_as_usual(dms, dmemu_clock, tmp_path, osb):
    dms.create_element(StandInGateway, "Gateway")
    client = make_client(dms, tmp_path, osb, **{"Lock Expiry Time": 60})
    lock(client, "dead-flow")
    client.set("Client Command", command_message("dead-flow", "c1", "ticket", operation="close", ticket_type="MO", fields={"ticket_id": "MO-1"}))
    assert client.get("Pending Gateway Request")
    dms.delete_element("Gateway")  # no answer can come
    dmemu_clock.advance(65)
    assert (client.get("Lock Status"), client.get("LockGuidId")) == (UNLOCKED, "")
    assert json.loads(client.get("Client Command Reply"))["error"] == "abandoned: the lock of flow dead-flow expired"


def test_a_forced_unlock_is_logged_and_the_holders_next_command_fails(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    client.set("Lock Status", UNLOCKED)  # the help page's Lock Status on the Configuration sub-page
    assert (client.get("Lock Status"), client.get("LockGuidId")) == (UNLOCKED, "")
    assert any("the lock of flow flow-a" in entry.message and "forced open by a user" in entry.message for entry in client.logs(LogType.ERROR))
    assert lock(client, "flow-b")["granted"]
    reply = search(client, "flow-a", "c1")
    assert not reply["ok"] and reply["error"] == "stale GUID flow-a: the lock is held by flow flow-b"


def test_lock_status_set_to_locked_by_hand_is_refused_and_a_free_client_stays_free(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    with pytest.raises(QActionFailedError) as refused:
        client.set("Lock Status", LOCKED)
    assert isinstance(refused.value.__cause__, ManualSetRefusedError)
    assert "a flow takes the client with a Lock Request" in str(refused.value.__cause__)
    assert (client.get("Lock Status"), client.get("LockGuidId")) == (UNLOCKED, "")
    assert lock(client, "flow-a")["granted"]
    client.set("Lock Status", LOCKED)  # locked already: nothing changes
    assert (client.get("Lock Status"), client.get("LockGuidId")) == (LOCKED, "flow-a")
    client.set("Lock Status", UNLOCKED)
    client.set("Lock Status", UNLOCKED)  # not locked: said in the log, nothing else
    assert any("the client was not locked" in entry.message for entry in client.logs())


def test_busy_status_forced_to_busy_by_hand_is_refused(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    with pytest.raises(QActionFailedError) as refused:
        client.set("Processing IAS Request Busy Status", BUSY)
    assert isinstance(refused.value.__cause__, ManualSetRefusedError)
    assert client.get("Processing IAS Request Busy Status") == NOT_BUSY
    lock(client, "flow-a")
    assert search(client, "flow-a", "c1")["ok"]  # the client still works


def test_concurrent_lock_attempts_grant_the_client_to_exactly_one_flow(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    replies: list[dict] = []
    client.add_change_listener(lambda element, change: replies.append(json.loads(change.value)), ids=(TelenetTicketClient.model.resolve("Lock Reply"),))
    start = threading.Barrier(8)

    def attempt(number: int) -> None:
        start.wait()
        for round_ in range(25):
            client.set("Lock Request", lock_message("lock", f"flow-{number}-{round_}"))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    granted = [reply["guid"] for reply in replies if reply["granted"]]
    assert len(replies) == 200 and len(granted) == 1
    assert client.get("LockGuidId") == granted[0]


# --------------------------------------------------------------------------------------------
# Searches and the Communication page


def test_a_search_is_recorded_with_its_answer_and_shows_the_tickets_found(dms, dmemu_clock, tmp_path, osb, monkeypatch):
    osb.add_ticket("MO", "ne-1", alarm_id="5", severity="Major", path_details="BRU-01/3/2")
    osb.add_ticket("MO", "ne-2", alarm_id="6", severity="Minor")
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    monkeypatch.setattr(ticket_client, "_wall_clock", iter([100.0, 100.25]).__next__)  # the exchange took 250 ms
    reply = search(client, "flow-a", "c1", alarm_id="5", status="Open")
    assert reply["ok"] and [t["ticket_id"] for t in reply["tickets"]] == ["MO-000001"]
    row = client.table("Communication - Response Table").row("c1")
    assert row["Request Time"] == row["Response Time"] == dmemu_clock.now()
    assert row["Duration"] == 250.0
    assert {k: row[k] for k in ("Service", "Ticket Type", "Network Element", "Alarm ID", "Result", "Response", "Flow GUID")} == {
        "Service": "OSB", "Ticket Type": "MO", "Network Element": "ne-1", "Alarm ID": "5", "Result": 1,
        "Response": "1 ticket found: MO-000001", "Flow GUID": "flow-a",
    }  # fmt: skip
    assert client.table("Searched Tickets").row("MO-000001")["Path Details"] == "BRU-01/3/2"
    assert client.get("Processing IAS Request Busy Status") == NOT_BUSY
    assert client.get("Client Processing Data") == "Search of MO tickets of 'ne-1' for alarm 5: 1 ticket found: MO-000001"
    body = osb.requests()[0].body
    assert "<tck:SearchTicketRequest>" in body and "<tck:AlarmId>5</tck:AlarmId>" in body


def test_a_failed_search_is_recorded_and_answered_as_a_failure(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    osb.stop()  # an outage
    reply = search(client, "flow-a", "c1")
    assert not reply["ok"] and "SerialConnectionError" in reply["error"]
    assert reply["retryable"]  # an outage may pass: the flow may search again
    row = client.table("Communication - Response Table").row("c1")
    assert row["Result"] == 0 and row["Response"].startswith("Failed: SerialConnectionError")
    assert client.get("Processing IAS Request Busy Status") == NOT_BUSY


def test_a_search_a_restart_cut_off_is_answered_as_a_failure_worth_retrying_when_the_client_starts(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    client.set("Client Command", command_message("flow-a", "c1", "search", ticket_type="MO", network_element="ne-1"), wait=False)
    assert client.get("Pending Search")  # sent; its answer not read yet
    client.restart()  # the stop closes the connection: the answer never comes
    reply = json.loads(client.get("Client Command Reply"))
    assert (reply["id"], reply["ok"], reply["retryable"]) == ("c1", False, True)
    assert reply["error"] == "the client stopped during the search: no answer came"
    assert client.get("Pending Search") == "" and client.get("LockGuidId") == "flow-a"  # the flow searches again
    assert search(client, "flow-a", "c2")["ok"]


def test_the_response_table_keeps_the_newest_rows_up_to_its_maximum(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb, **{"Response Table Max Rows": 3})
    lock(client, "flow-a")
    for number in range(1, 6):
        search(client, "flow-a", f"c{number}")
    assert client.table("Communication - Response Table").keys() == ["c3", "c4", "c5"]
    client.set("Response Table Max Rows", 2)
    assert client.table("Communication - Response Table").keys() == ["c4", "c5"]


def test_a_search_id_used_again_updates_its_row_in_place(dms, tmp_path, osb):
    osb.add_ticket("MO", "ne-2", alarm_id="6", severity="Major")
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    for command_id, network_element in (("c1", "ne-1"), ("c2", "ne-1"), ("c1", "ne-2")):
        assert search(client, "flow-a", command_id, network_element)["ok"]
    table = client.table("Communication - Response Table")
    assert table.keys() == ["c1", "c2"]  # the row keeps its place, as a FillArrayNoDelete keeps it
    assert (table.row("c1")["Network Element"], table.row("c1")["Response"]) == ("ne-2", "1 ticket found: MO-000001")


def test_a_new_flow_sees_only_its_own_searched_tickets(dms, tmp_path, osb):
    osb.add_ticket("MO", "ne-1", alarm_id="5", severity="Major")
    osb.add_ticket("MO", "ne-2", alarm_id="6", severity="Major")
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    search(client, "flow-a", "c1", "ne-1")
    release(client, "flow-a")
    assert client.table("Searched Tickets").keys() == ["MO-000001"]
    lock(client, "flow-b")
    assert client.table("Searched Tickets").keys() == []
    search(client, "flow-b", "c2", "ne-2")
    assert client.table("Searched Tickets").keys() == ["MO-000002"]


# --------------------------------------------------------------------------------------------
# Ticket requests through the Gateway, and the Busy status


def test_a_ticket_request_goes_to_the_gateway_and_its_answers_come_back_to_the_flow(dms, tmp_path, osb):
    dms.create_element(StandInGateway, "Gateway")
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    fields = {"alarm_id": "5", "network_element": "ne-1", "severity": "Major", "path_details": "p", "description": "d"}
    client.set("Client Command", command_message("flow-a", "c1", "ticket", operation="create", ticket_type="MO", fields=fields))
    (gateway, request), = GATEWAY_REQUESTS
    assert request.body == {"operation": "create", "ticket_type": "MO", "fields": fields}
    assert client.get("Processing IAS Request Busy Status") == BUSY
    assert client.get("Client Processing Data") == "Waiting for the Ticket Gateway: create MO ticket"
    other = search(client, "flow-a", "c2")
    assert not other["ok"] and other["error"].startswith("the client is busy: Waiting for the Ticket Gateway")
    answer(dms, request, {"stage": "ack", "transaction_id": "T-1"})
    ack = json.loads(client.get("Client Command Reply"))
    assert (ack["id"], ack["final"], ack["stage"], ack["transaction_id"]) == ("c1", False, "ack", "T-1")
    assert client.get("Processing IAS Request Busy Status") == BUSY
    answer(dms, request, {"stage": "result", "status": "COMPLETED", "ticket_id": "MO-000001"})
    result = json.loads(client.get("Client Command Reply"))
    assert (result["id"], result["final"], result["ok"], result["ticket_id"]) == ("c1", True, True, "MO-000001")
    assert client.get("Processing IAS Request Busy Status") == NOT_BUSY
    assert client.get("Client Processing Data") == "create MO ticket COMPLETED: MO-000001"


def test_a_gateway_failure_is_passed_on_to_the_flow(dms, tmp_path, osb):
    dms.create_element(StandInGateway, "Gateway")
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    client.set("Client Command", command_message("flow-a", "c1", "ticket", operation="close", ticket_type="MO", fields={"ticket_id": "MO-000009"}))
    answer(dms, GATEWAY_REQUESTS[0][1], error="NACK: unknown ticket MO-000009")
    reply = json.loads(client.get("Client Command Reply"))
    assert (reply["final"], reply["ok"], reply["error"]) == (True, False, "NACK: unknown ticket MO-000009")
    assert client.get("Processing IAS Request Busy Status") == NOT_BUSY


def test_forcing_not_busy_ends_the_flows_wait_and_the_late_answer_is_ignored(dms, tmp_path, osb):
    dms.create_element(StandInGateway, "Gateway")
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    client.set("Client Command", command_message("flow-a", "c1", "ticket", operation="update", ticket_type="MO",
                                                 fields={"ticket_id": "MO-000001", "severity": "Minor"}))  # fmt: skip
    assert client.get("Processing IAS Request Busy Status") == BUSY
    client.set("Processing IAS Request Busy Status", NOT_BUSY)
    assert client.get("Processing IAS Request Busy Status") == NOT_BUSY
    reply = json.loads(client.get("Client Command Reply"))
    assert (reply["id"], reply["ok"], reply["error"]) == ("c1", False, "abandoned: the client was forced Not Busy by a user")
    answer(dms, GATEWAY_REQUESTS[0][1], {"stage": "result", "status": "COMPLETED", "ticket_id": "MO-000001"})
    assert json.loads(client.get("Client Command Reply"))["error"] == "abandoned: the client was forced Not Busy by a user"
    assert any("ignored: no flow waits for it" in entry.message for entry in client.logs())
    assert search(client, "flow-a", "c2")["ok"]  # the client works again


@pytest.mark.parametrize(
    ("force", "why"),
    [(("Lock Status", UNLOCKED), "the lock was forced open by a user"), (("Processing IAS Request Busy Status", NOT_BUSY), "the client was forced Not Busy by a user")],
)
def test_a_search_under_way_is_abandoned_as_a_gateway_request_is_and_its_late_answer_ignored(dms, tmp_path, osb, force, why):
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    client.set("Client Command", command_message("flow-a", "c1", "search", ticket_type="MO", network_element="ne-1"), wait=False)
    client.set("Processing IAS Request Busy Status", BUSY, wait=False)  # busy already (a search is under way): not refused; not waiting for its answer
    assert client.get("Processing IAS Request Busy Status") == BUSY
    client.set(*force)  # the search's answer comes after the flow was told
    reply = json.loads(client.get("Client Command Reply"))
    assert (reply["id"], reply["ok"], reply["error"]) == ("c1", False, f"abandoned: {why}")
    assert client.get("Pending Search") == "" and client.get("Processing IAS Request Busy Status") == NOT_BUSY
    assert client.table("Communication - Response Table").row("c1")["Result"] == 1  # the answer came, and is recorded
    assert any("c1 of flow flow-a answered after it was abandoned" in entry.message for entry in client.logs())


def test_a_forced_unlock_during_a_gateway_request_tells_the_waiting_flow(dms, tmp_path, osb):
    dms.create_element(StandInGateway, "Gateway")
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    client.set("Client Command", command_message("flow-a", "c1", "ticket", operation="close", ticket_type="MO", fields={"ticket_id": "MO-1"}))
    client.set("Lock Status", UNLOCKED)
    reply = json.loads(client.get("Client Command Reply"))
    assert (reply["id"], reply["ok"], reply["error"]) == ("c1", False, "abandoned: the lock was forced open by a user")
    assert client.get("Processing IAS Request Busy Status") == NOT_BUSY


# --------------------------------------------------------------------------------------------
# Heartbeats and the topology


def test_heartbeats_reach_the_receiver_at_the_configured_interval(dms, dmemu_clock, tmp_path, osb):
    receiver = dms.create_element(GenericDynamicHeartbeatReceiver, "Heartbeats")
    client = make_client(dms, tmp_path, osb, **{"Heartbeat Receiver Element": "Heartbeats", "Heartbeat Interval": 30})
    started = dmemu_clock.now()
    assert receiver.table("Heartbeats").row("Client 1")["Beats Received"] == 1  # at start-up
    dmemu_clock.advance(95)
    row = receiver.table("Heartbeats").row("Client 1")
    assert (row["Beats Received"], row["Expected Interval"], row["Last Beat"]) == (4, 30, started + 90)
    assert (client.get("Last Heartbeat"), client.get("Heartbeat Status")) == (started + 90, "OK")
    client.set("Heartbeat Interval", 60)
    dmemu_clock.advance(60)
    assert receiver.table("Heartbeats").row("Client 1")["Beats Received"] == 5


def test_beats_announce_the_period_they_really_go_at_so_the_receiver_never_flaps(dms, dmemu_clock, tmp_path, osb):
    receiver = dms.create_element(GenericDynamicHeartbeatReceiver, "Heartbeats")
    with pytest.raises(InvalidValueError):  # beats go on the 5 s timer: a shorter interval cannot be kept
        make_client(dms, tmp_path, osb, **{"Heartbeat Receiver Element": "Heartbeats", "Heartbeat Interval": 1})
    client = make_client(dms, tmp_path, osb, name="Client 2", **{"Heartbeat Receiver Element": "Heartbeats", "Heartbeat Interval": 7})
    for _ in range(12):
        dmemu_clock.advance(10)
        assert receiver.table("Heartbeats").row("Client 2")["Status"] == HEARTBEAT_OK
    assert receiver.table("Heartbeats").row("Client 2")["Expected Interval"] == 10  # the 5 s timer's next look after 7 s
    assert client.get("Heartbeat Status") == "OK"


def test_a_heartbeat_to_a_missing_receiver_says_it_failed(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb, **{"Heartbeat Receiver Element": "Nobody"})
    assert client.get("Heartbeat Status") == "Failed: failed (see the log)"
    assert any("'Nobody'" in entry.message and "Heartbeat" in entry.message for entry in client.logs(LogType.ERROR))


def test_the_topology_is_copied_when_the_client_starts_and_only_then(dms, tmp_path, osb):
    folder = tmp_path / "provisioning"
    folder.mkdir()
    (folder / "a.csv").write_text("network_element_address,ninas_network_path_details\nne-1,BRU-01/3/2\nne-2,ANT-02/1/1\n")
    topology = dms.create_element(TelenetTopologyDatabase, "Topology DB", parameters={"Provisioning Folder": str(folder)})
    client = make_client(dms, tmp_path, osb, **{"Topology Database Element": "Topology DB"})
    assert client.table("Ninas Network Path Details").column("Path Details") == {"ne-1": "BRU-01/3/2", "ne-2": "ANT-02/1/1"}
    assert client.get("Topology Status") == "2 network elements copied from 'Topology DB'"
    (folder / "a.csv").write_text("network_element_address,ninas_network_path_details\nne-3,GNT-03/2/2\n")
    topology.set("Execute Now", 1)
    assert topology.table("Topology").keys() == ["ne-3"]
    assert client.table("Ninas Network Path Details").keys() == ["ne-1", "ne-2"]  # not refreshed while running
    client.restart()
    assert client.table("Ninas Network Path Details").column("Path Details") == {"ne-3": "GNT-03/2/2"}


def test_a_missing_topology_database_keeps_the_last_copy(dms, tmp_path, osb):
    folder = tmp_path / "provisioning"
    folder.mkdir()
    (folder / "a.csv").write_text("network_element_address,ninas_network_path_details\nne-1,BRU-01/3/2\n")
    dms.create_element(TelenetTopologyDatabase, "Topology DB", parameters={"Provisioning Folder": str(folder)})
    client = make_client(dms, tmp_path, osb, **{"Topology Database Element": "Topology DB"})
    dms.delete_element("Topology DB")
    client.restart()
    assert client.table("Ninas Network Path Details").keys() == ["ne-1"]
    assert "the last copy is kept" in client.get("Topology Status")


def test_the_lock_survives_a_restart_of_the_client(dms, tmp_path, osb):
    client = make_client(dms, tmp_path, osb)
    lock(client, "flow-a")
    client.restart()
    assert (client.get("Lock Status"), client.get("LockGuidId")) == (LOCKED, "flow-a")
    assert search(client, "flow-a", "c1")["ok"]


def test_the_pages_are_the_help_pages():
    from dmemu.pages import pages_of

    shown = {page.path: [item.name for item in (*page.parameters, *page.tables)] for page in pages_of(TelenetTicketClient)}
    assert list(shown) == ["Connection Details", "Connection Details > Configuration", "Communication", "Search Results"]
    assert {"Service Info Table", "Service Selection", "LockGuidId", "Lock Time", "Import CSV", "Export CSV"} <= set(shown["Connection Details"])
    assert {"Ticket Gateway Element", "Topology Database Element", "Heartbeat Receiver Element", "Response Table Max Rows", "Lock Status"} <= set(
        shown["Connection Details > Configuration"]
    )
    assert {"Processing IAS Request Busy Status", "Client Processing Data", "Communication - Response Table"} <= set(shown["Communication"])
    assert {"Ninas Network Path Details", "Searched Tickets"} <= set(shown["Search Results"])

