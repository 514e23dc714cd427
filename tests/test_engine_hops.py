"""What one hop of a script costs the engine (a set, a QAction, a request and its reply, the
script's wait): work done once that used to be done on every call, with the behaviour kept."""

from __future__ import annotations

import difflib
import uuid

import pytest

from dmemu.protocol import (
    Column,
    Connection,
    ConnectionSettingError,
    LogType,
    Number,
    Parameter,
    Protocol,
    QAction,
    Reply,
    Request,
    SetStatus,
    String,
    Table,
)
from dmemu.protocol.definitions import ProtocolModel

STEPS: list = []
RESULTS: list = []


def run_steps(protocol):
    for step in STEPS:
        RESULTS.append(step(protocol))


class Device(Protocol):
    name = "Engine Hops Device"
    parameters = (
        Parameter(1, "Run", type=Number(), write=True, default=0),
        Parameter(2, "Count", type=Number(0, 10), default=0),
        Parameter(3, "Note", type=String(), default=""),
        Parameter(4, "Request", type=String(), write=True, default=""),
        Parameter(5, "Reply", type=String(), write=True, default=""),
    )
    tables = (Table(100, "Rows", columns=(Column(101, "Key", key=True), Column(102, "Value"))),)
    qactions = (QAction(1, run_steps, triggers=(1,)),)


@pytest.fixture(autouse=True)
def clear_steps():
    STEPS.clear()
    RESULTS.clear()


def test_a_qaction_resolves_each_parameter_name_once(dms, monkeypatch):
    device = dms.create_element(Device, "Device")
    resolved: list = []
    resolve = ProtocolModel.resolve

    def counting(model, ref):
        resolved.append(ref)
        return resolve(model, ref)

    monkeypatch.setattr(ProtocolModel, "resolve", counting)
    STEPS[:] = [lambda p: p.set_parameter("Count", p.get_parameter("Count") + 1), lambda p: p.set_parameters({"Note": "n", 2: 5})]
    device.set("Run", 1)
    device.set("Run", 2)
    assert sorted(resolved, key=str) == [2, "Count", "Note"]  # the second run found them all kept
    assert RESULTS == [SetStatus.OK] * 4 and device.get("Count") == 5 and device.get("Note") == "n"


def test_the_kept_references_refuse_as_before(dms):
    device = dms.create_element(Device, "Device")
    STEPS[:] = [
        lambda p: p.set_parameter("Rows", 1),  # a table, twice: never kept as a parameter
        lambda p: p.set_parameter("Rows", 1),
        lambda p: p.set_parameter("Nope", 1),
        lambda p: p.set_parameter("Count", 11),
        lambda p: p.set_parameters({"Note": "kept", "Count": 99, "Nope": 1}),  # the first failure answers, the rest is set
    ]
    device.set("Run", 1)
    device.set("Run", 2)
    expected = [SetStatus.NOT_SETTABLE, SetStatus.NOT_SETTABLE, SetStatus.UNKNOWN_PARAMETER, SetStatus.INVALID_VALUE, SetStatus.INVALID_VALUE]
    assert RESULTS == expected * 2
    assert device.get("Note") == "kept" and device.get("Count") == 0
    errors = [entry.message for entry in device.logs(LogType.ERROR)]
    assert errors[0] == "set_parameter('Rows') refused: table 100 'Rows' is a table: use fill_array or set_row"
    STEPS[:] = [lambda p: p.get_parameter("Rows")]
    device.raise_on_failure = True
    with pytest.raises(Exception, match="is a table: read it with get_row, get_keys or get_column"):
        device.set("Run", 3)


def send(protocol):
    return protocol.send_request("Device", "Request", {"ask": protocol.get_parameter("Run")}, "Reply")


def test_a_request_is_encoded_once_per_send(dms, monkeypatch):
    device = dms.create_element(Device, "Device")
    encoded: list[str] = []
    to_json = Request.to_json

    def counting(request):
        encoded.append(request.id)
        return to_json(request)

    monkeypatch.setattr(Request, "to_json", counting)
    STEPS[:] = [send]
    device.set("Run", 7)
    (request_id,) = RESULTS
    assert encoded == [request_id]
    assert Request.from_json(device.get("Request")) == Request(request_id, Request.from_json(device.get("Request")).reply_to, {"ask": 7})
    assert uuid.UUID(hex=request_id).version == 4  # still a random (version 4) uuid


def test_a_body_that_is_not_json_still_raises_in_the_sending_qaction(dms):
    device = dms.create_element(Device, "Device")
    STEPS[:] = [lambda p: p.send_request("Device", "Request", {"not json": object()}, "Reply")]
    device.raise_on_failure = True
    with pytest.raises(Exception, match="the body must be a JSON value"):
        device.set("Run", 1)


def test_a_reply_to_a_missing_caller_is_refused_and_logged_as_before(dms):
    device = dms.create_element(Device, "Device")
    orphan = Request("r1", _address(99, 1, 5))
    STEPS[:] = [lambda p: p.reply(orphan, {"ok": True})]
    device.set("Run", 1)
    assert RESULTS == [SetStatus.FAILED]
    (error,) = [entry.message for entry in device.logs(LogType.ERROR)]
    assert error.startswith("set on element (99, 1) parameter 5 refused: no element (99, 1)")


def _address(agent: int, element: int, parameter: int):
    from dmemu.protocol import ReplyAddress

    return ReplyAddress(agent, element, parameter)


def test_a_reply_is_cut_to_the_callers_parameter_as_before(dms):
    class Short(Protocol):
        name = "Engine Hops Short Reply"
        parameters = (Parameter(5, "Reply", type=String(max_length=60), write=True, default=""),)

    caller = dms.create_element(Short, "Caller")
    device = dms.create_element(Device, "Device")
    request = Request("r2", _address(*caller.ids, 5))
    STEPS[:] = [lambda p: p.reply(request, error="x" * 200)]
    device.set("Run", 1)
    assert RESULTS == [SetStatus.OK]
    text = caller.get("Reply")
    assert len(text) <= 60 and Reply.from_json(text).error.endswith("...")


def test_a_connection_far_from_bypass_proxy_skips_the_spelling_check(monkeypatch):
    def no_difflib(*args, **kwargs):
        raise AssertionError("difflib used for a bus address far from BypassProxy")

    monkeypatch.setattr(difflib, "SequenceMatcher", no_difflib)
    for bus_address in ("", "1", "BypassProxy", " bypassproxy ", "a much longer bus address than that"):
        Connection(bus_address=bus_address)


@pytest.mark.parametrize("bus_address", ["BypasProxy", "ByPass Proxy", "bypassprox", "bypasproxyy"])
def test_a_near_miss_of_bypass_proxy_is_still_refused(bus_address):
    with pytest.raises(ConnectionSettingError, match="did you mean 'BypassProxy'"):
        Connection(bus_address=bus_address)


def test_waits_on_one_element_forget_their_deletion_hooks_as_they_end(dms):
    device = dms.create_element(Device, "Device")

    async def wait(ctx, count):
        return await ctx.wait_for("Device", "Count", lambda value: value == count)

    dms.automation.register("wait", wait)
    runs = [dms.automation.run("wait", count) for count in range(1, 6)]
    assert len(dms.automation._deletion_watchers[device]) == 5
    STEPS[:] = [lambda p: p.set_parameter("Count", 3)]
    device.set("Run", 1)
    assert runs[2].done and runs[2].result == 3
    assert len(dms.automation._deletion_watchers[device]) == 4  # the ended wait's hook went with it
    dms.delete_element("Device")
    assert [run.error for run in runs if run is not runs[2]] == [
        f"ElementNotFoundError: script 'wait' run {run.id}: element 'Device' parameter 2 'Count' will never be set: the element was deleted"
        for run in runs
        if run is not runs[2]
    ]
    assert dms.automation._deletion_watchers == {}


def test_waits_for_one_parameter_share_one_listener_and_end_one_by_one(dms):
    device = dms.create_element(Device, "Device")

    async def wait(ctx, accept):
        return await ctx.wait_for("Device", "Count", accept)

    def broken(value):
        if value:  # the current 0 is judged when the wait begins
            raise ValueError(f"cannot judge {value}")
        return False

    dms.automation.register("wait", wait)
    runs = [dms.automation.run("wait", accept) for accept in (lambda v: v == 3, broken, None, lambda v: v == 4)]
    assert len(device._change_listeners) == 1  # one for the four waits
    STEPS[:] = [lambda p: p.set_parameter("Count", 3)]
    device.set("Run", 1)
    assert [(run.done, run.result, run.error) for run in runs] == [
        (True, 3, None),
        (True, None, "ValueError: cannot judge 3"),  # its predicate's error ends its own wait only
        (True, 3, None),
        (False, None, None),
    ]
    STEPS[:] = [lambda p: p.set_parameter("Count", 4)]
    device.set("Run", 2)
    assert runs[3].result == 4 and device._change_listeners == () and dms.automation._parameter_waits == {}


def test_a_base_url_parses_the_host_only_when_it_could_be_an_ipv6_literal(monkeypatch):
    import ipaddress

    parse = ipaddress.ip_address
    parsed: list[str] = []

    def counting(host):
        parsed.append(host)
        return parse(host)

    monkeypatch.setattr(ipaddress, "ip_address", counting)
    urls = [Connection(host=host, port=80).base_url() for host in ("device.example", "10.0.0.1", "::1", "[::1]", "http://[fe80::1]")]
    assert urls == ["http://device.example:80", "http://10.0.0.1:80", "http://[::1]:80", "http://[::1]:80", "http://[fe80::1]:80"]
    assert parsed == ["::1", "[::1]", "[fe80::1]"]


def test_a_plain_http_target_is_worked_out_once_per_connection(monkeypatch):
    from dmemu.protocol import http

    http.plain_http_target.cache_clear()
    split: list[str] = []
    urlsplit = http.urlsplit
    monkeypatch.setattr(http, "urlsplit", lambda url: split.append(url) or urlsplit(url))
    for _ in range(3):
        assert http.plain_http_target(Connection(host="127.0.0.1", port=8650, bus_address="BypassProxy", retry=http.NO_RETRIES)) == ("127.0.0.1", 8650)
        assert http.plain_http_target(Connection(host="127.0.0.1", port=8650)) is None  # proxies from the environment
    assert split == ["http://127.0.0.1:8650"]
