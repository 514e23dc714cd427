"""An element's HTTP connection: base URL, timeout, retry policy, proxy choice and basic auth.

Unit-level checks run against `responses`; retries, timeouts, dropped connections and proxies
run against real servers on 127.0.0.1 (``responses`` neither sleeps nor lets urllib3 retry
connection faults, see REFERENCE §5). No test sleeps: `time.sleep` fails every test here, and
a timeout is a socket waiting with a small deadline.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from dmemu.dms import DataMinerSystem
from dmemu.protocol import (
    BYPASS_PROXY,
    NO_RETRIES,
    Connection,
    ConnectionSettingError,
    Element,
    HttpConnection,
    Number,
    Parameter,
    Protocol,
    QAction,
    RetryPolicy,
    StateFileError,
    String,
    VirtualClock,
    build_session,
)
from dmemu.protocol.http import is_loopback_host, plain_http_target

PASSWORD = "s3cr3t-Pa55word"
HANG_LIMIT = 5.0  # a hanging handler gives up after this even if a test forgets to release it

# -- protocols -------------------------------------------------------------------------------


def fetch_path(protocol: Any) -> None:
    """GET the path just set; record the status and log what the session authenticates with."""
    path = protocol.get_parameter("Fetch Path")
    response = protocol.http.get(path)
    protocol.set_parameter("Last Status", response.status_code)
    protocol.log(f"GET {path} answered {response.status_code} (auth {protocol.http.auth!r})")


def fail_with_password(protocol: Any) -> None:
    """A QAction that logs, then fails, with the connection password in both messages."""
    password = protocol.element.connection.password
    protocol.log(f"logging in with password {password}")
    raise RuntimeError(f"device refused password {password}")


class HttpProbe(Protocol):
    name = "HTTP Probe"
    connection = HttpConnection(default_port=8080, credentials=True)
    parameters = (
        Parameter(1, "Fetch Path", type=String(), write=True),
        Parameter(2, "Last Status", type=Number(0, 599)),
        Parameter(3, "Fail", type=Number(0, 1), write=True),
    )
    qactions = (
        QAction(10, fetch_path, triggers=(1,)),
        QAction(11, fail_with_password, triggers=(3,)),
    )


class Plain(Protocol):
    name = "Plain"
    parameters = (Parameter(1, "Value", type=Number(), write=True),)


def add_element(
    dms: DataMinerSystem, connection: Connection | None = None, protocol: type[Protocol] = HttpProbe
) -> Element:
    return dms.create_element(protocol, f"element {len(dms.elements) + 1}", connection=connection)


# -- a loopback server -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()


DROP = "drop"  # close the connection without answering
HANG = "hang"  # answer nothing until the test releases the server, then close


def retry_later() -> Reply:
    return Reply(503, b"busy", (("Retry-After", "0"),))


def json_reply(data: Any) -> Reply:
    return Reply(200, json.dumps(data).encode(), (("Content-Type", "application/json"),))


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # as on the request line: absolute when the client talks to a proxy
    headers: dict[str, str]
    body: bytes


@dataclass
class Script:
    replies: collections.deque[Any] = field(default_factory=collections.deque)
    default: Reply = Reply()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a device would; TCP_NODELAY keeps it fast
    server: LoopbackServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.take(Seen(self.command, self.path, headers, body))
        if reply == DROP:
            self.close_connection = True
            return
        if reply == HANG:
            self.server.release.wait(HANG_LIMIT)
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LoopbackServer(ThreadingHTTPServer):
    """Answers from a script (then a default reply) and records every request it sees."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = Script()
        self.seen: list[Seen] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle/delayed-ACK stall
        return sock, address

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reply(self, *replies: Any) -> None:
        self.script.replies.extend(replies)

    def take(self, seen: Seen) -> Any:
        with self._lock:
            self.seen.append(seen)
            return self.script.replies.popleft() if self.script.replies else self.script.default

    def count(self, method: str | None = None) -> int:
        return sum(method is None or seen.method == method for seen in self.seen)


@contextlib.contextmanager
def running_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()  # a handler waiting on HANG lets go now
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with running_server() as loopback:
        yield loopback


@pytest.fixture
def proxy() -> Iterator[LoopbackServer]:
    """A loopback stand-in for an HTTP proxy: it records the absolute URL on each request line."""
    with running_server() as loopback:
        loopback.script.default = Reply(200, b"via proxy")
        yield loopback


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy settings from the machine running the tests, and no sleeping at all."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"time.sleep({seconds}) called: tests must not sleep")

    monkeypatch.setattr(time, "sleep", no_sleep)


def loopback(server: LoopbackServer, **settings: Any) -> Connection:
    settings.setdefault("bus_address", "BypassProxy")
    return Connection(host="127.0.0.1", port=server.port, **settings)


FAST_RETRY = RetryPolicy(attempts=2, backoff_seconds=0)

# -- base URL --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connection", "default_port", "expected"),
    [
        (Connection(host="10.0.0.5", port=8080), 443, "http://10.0.0.5:8080"),
        (Connection(host="10.0.0.5", port=80), 443, "http://10.0.0.5:80"),
        (Connection(host="10.0.0.5", port=443), 80, "https://10.0.0.5:443"),
        (Connection(host="device", port=8443, scheme="https"), 443, "https://device:8443"),
        (Connection(host="device", port=443, scheme="http"), 443, "http://device:443"),
        (Connection(host="device"), 80, "http://device:80"),
        (Connection(host="device"), 443, "https://device:443"),
        (Connection(host="device"), 8080, "http://device:8080"),
        (Connection(host="device/", port=8080), 443, "http://device:8080"),
        (Connection(host="https://device", port=8443), 443, "https://device:8443"),
        (Connection(host="::1", port=8080), 443, "http://[::1]:8080"),
        (Connection(host="[::1]", port=8080), 443, "http://[::1]:8080"),
    ],
    ids=[
        "port-8080-http",
        "port-80-http",
        "port-443-https",
        "explicit-https",
        "explicit-http-on-443",
        "default-port-80",
        "default-port-443",
        "default-port-8080",
        "trailing-slash",
        "scheme-in-host-kept",
        "ipv6-bracketed",
        "ipv6-already-bracketed",
    ],
)
def test_base_url_comes_from_host_port_and_scheme(connection: Connection, default_port: int, expected: str) -> None:
    assert connection.base_url(default_port) == expected
    assert build_session(connection, default_port=default_port).base_url == expected + "/"


def test_element_uses_the_protocols_default_port_when_the_connection_has_none(dms: DataMinerSystem) -> None:
    without_port = add_element(dms, Connection(host="device"))
    assert without_port.http.base_url == "http://device:8080/"
    default_connection = add_element(dms)  # created with the protocol's default port
    assert default_connection.connection.port == 8080
    assert default_connection.http.base_url == "http://127.0.0.1:8080/"
    assert add_element(dms, Connection(host="device", port=443)).http.base_url == "https://device:443/"


@responses.activate
def test_relative_paths_join_the_base_url_and_absolute_urls_pass_through(dms: DataMinerSystem) -> None:
    for url in ("http://device:8080/items", "http://device:8080/api/v1/items", "http://elsewhere:9000/status"):
        responses.get(url, body=url)
    http = add_element(dms, Connection(host="device", port=8080)).http

    assert http.get("/items").text == "http://device:8080/items"
    assert http.get("items").text == "http://device:8080/items"
    assert http.get("api/v1/items", params={"page": 2}).url == "http://device:8080/api/v1/items?page=2"
    assert http.get("http://elsewhere:9000/status").text == "http://elsewhere:9000/status"
    assert [call.request.url for call in responses.calls] == [
        "http://device:8080/items",
        "http://device:8080/items",
        "http://device:8080/api/v1/items?page=2",
        "http://elsewhere:9000/status",
    ]


# -- connection settings, checked when made -------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field", "says"),
    [
        ({"port": "abc"}, "port", "connection port='abc': a port is a whole number from 1 to 65535"),
        ({"port": "8080"}, "port", "port='8080'"),
        ({"port": -1}, "port", "port=-1"),
        ({"port": 0}, "port", "port=0"),
        ({"port": 70000}, "port", "port=70000"),
        ({"port": 8080.0}, "port", "port=8080.0"),
        ({"port": True}, "port", "port=True"),
        ({"host": ""}, "host", "connection host='': the host is a non-empty name"),
        ({"host": "   "}, "host", "host='   '"),
        ({"host": "https://"}, "host", "host='https://'"),
        ({"host": "my device"}, "host", "without spaces"),
        ({"host": None}, "host", "connection host=None: the host is a string"),
        ({"host": "ftp://device"}, "host", "a scheme written in the host is one of http, https"),
        ({"bus_address": None}, "bus_address", "connection bus_address=None: the bus address is a string"),
        ({"bus_address": "ByPass Proxy"}, "bus_address", "did you mean 'BypassProxy'?"),
        ({"bus_address": "BypasProxy"}, "bus_address", "did you mean 'BypassProxy'?"),
        ({"scheme": "ftp"}, "scheme", "connection scheme='ftp': the scheme is one of http, https"),
        ({"timeout": 0}, "timeout", "connection timeout=0: the timeout is a positive, finite number"),
        ({"timeout": float("inf")}, "timeout", "timeout=inf"),
        ({"timeout": "30"}, "timeout", "timeout='30'"),
        ({"retry": 3}, "retry", "connection retry=3: the retry policy is a RetryPolicy"),
        ({"username": 7}, "username", "connection username is a int"),
    ],
)
def test_a_bad_connection_setting_is_refused_when_made_naming_field_and_value(
    settings: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ConnectionSettingError) as raised:
        Connection(**settings)
    assert says in str(raised.value)
    assert raised.value.field == field
    assert raised.value.value is settings[field] or raised.value.value == settings[field]
    assert isinstance(raised.value, ValueError)


def test_a_password_of_the_wrong_kind_stays_out_of_the_message() -> None:
    with pytest.raises(ConnectionSettingError, match="connection password is a bytes; it is a string or None") as raised:
        Connection(password=PASSWORD.encode())
    assert PASSWORD not in str(raised.value) and PASSWORD not in repr(raised.value)


@pytest.mark.parametrize(
    "settings",
    [
        {"port": 1}, {"port": 65535}, {"port": None}, {"host": "10.0.0.5"}, {"host": "[::1]"}, {"host": "https://device/"},
        {"bus_address": ""}, {"bus_address": "1"}, {"bus_address": " bypassproxy "}, {"scheme": "HTTPS"}, {"timeout": 1},
    ],
)
def test_good_connection_settings_are_kept(settings: dict[str, Any]) -> None:
    connection = Connection(**settings)
    assert {name: getattr(connection, name) for name in settings} == settings


def test_a_saved_connection_that_is_now_refused_names_the_registry(tmp_path: Path, dmemu_clock: VirtualClock) -> None:
    state = tmp_path / "state"
    with DataMinerSystem(state, dmemu_clock) as first:
        add_element(first, Connection(host="device", port=8080))
    registry = state / "dms.json"
    document = json.loads(registry.read_text())
    (record,) = document["elements"].values()
    record["connection"]["port"] = 70000  # written by hand, or by a version that accepted it
    registry.write_text(json.dumps(document))

    with pytest.raises(StateFileError, match=r"dms\.json: bad connection for 'element 1': connection port=70000"):
        DataMinerSystem(state, dmemu_clock)


def test_an_http_element_made_without_a_connection_says_where_it_talks(
    dms: DataMinerSystem, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dmemu.dms"):
        add_element(dms)  # no connection: kept for tests and demos, on the protocol's default port
        add_element(dms, Connection(host="device"))
        dms.create_element(Plain, "plain")  # no HTTP connection to speak of
    assert [record.getMessage() for record in caplog.records] == [
        "element 'element 1' (protocol 'HTTP Probe') was created without a connection, so it talks to "
        "http://127.0.0.1:8080; pass connection=Connection(host=..., port=...) to reach its device"
    ]


# -- unit level with responses ---------------------------------------------------------------


def test_a_get_through_the_element_reaches_the_url_with_basic_auth_and_a_timeout(dms: DataMinerSystem) -> None:
    connection = Connection(host="device", port=8080, username="admin", password=PASSWORD, timeout=7.5)
    element = add_element(dms, connection)
    with responses.RequestsMock() as mock:  # fails if the URL is never requested
        mock.get("http://device:8080/api/status", json={"ok": True})
        element.set("Fetch Path", "/api/status")  # runs the QAction, which uses protocol.http

        assert element.get("Last Status") == 200
        (call,) = mock.calls
        expected = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        assert call.request.headers["Authorization"] == expected
        assert call.request.req_kwargs["timeout"] == 7.5  # what the transport adapter was given


@responses.activate
def test_a_timeout_given_by_the_caller_wins_and_no_credentials_means_no_auth(dms: DataMinerSystem) -> None:
    responses.get("http://device:8080/x")
    http = add_element(dms, Connection(host="device", port=8080, timeout=7.5)).http
    http.get("/x", timeout=1.25)
    http.get("/x")
    first, second = responses.calls
    assert first.request.req_kwargs["timeout"] == 1.25
    assert second.request.req_kwargs["timeout"] == 7.5
    assert "Authorization" not in first.request.headers
    assert http.auth is None


# -- proxies ---------------------------------------------------------------------------------


def point_environment_at(monkeypatch: pytest.MonkeyPatch, proxy: LoopbackServer) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, proxy.url)
        monkeypatch.setenv(name.lower(), proxy.url)


def test_bypass_proxy_goes_straight_to_the_device_despite_proxy_settings(
    dms: DataMinerSystem, server: LoopbackServer, proxy: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_environment_at(monkeypatch, proxy)
    http = add_element(dms, loopback(server, bus_address="BypassProxy", retry=NO_RETRIES)).http

    response = http.get("/direct")

    assert (response.status_code, response.text) == (200, "ok")
    assert [seen.path for seen in server.seen] == ["/direct"]
    assert proxy.seen == []
    assert http.trust_env is False
    assert http.proxies == {}


def test_without_bypass_proxy_the_environment_proxy_is_used(
    dms: DataMinerSystem, proxy: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_environment_at(monkeypatch, proxy)
    # A device elsewhere (loopback is never proxied): only the proxy sees the name.
    http = add_element(dms, Connection(host="device.example", port=8080, retry=NO_RETRIES)).http

    response = http.get("/via")

    assert (response.status_code, response.text) == (200, "via proxy")
    assert [(seen.method, seen.path) for seen in proxy.seen] == [("GET", "http://device.example:8080/via")]
    assert http.trust_env is True


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LocalHost"])
@pytest.mark.parametrize("variables", [("HTTP_PROXY", "HTTPS_PROXY"), ("http_proxy",), ("ALL_PROXY",), ("all_proxy",)])
def test_loopback_never_goes_through_an_environment_proxy(
    dms: DataMinerSystem,
    server: LoopbackServer,
    proxy: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    variables: tuple[str, ...],
) -> None:
    for name in variables:
        monkeypatch.setenv(name, proxy.url)
    http = add_element(dms, Connection(host=host, port=server.port, retry=NO_RETRIES)).http

    response = http.get("/direct")

    assert (response.status_code, response.text) == (200, "ok")
    assert [seen.path for seen in server.seen] == ["/direct"]
    assert proxy.seen == []


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_dead_proxy_in_the_environment_does_not_stop_a_loopback_device(
    dms: DataMinerSystem, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port()}")
    http = add_element(dms, Connection(port=server.port, retry=NO_RETRIES)).http

    assert http.get("/alive").text == "ok"
    assert [seen.path for seen in server.seen] == ["/alive"]


@pytest.mark.parametrize("host", ["::1", "127.0.0.2", "127.255.255.254"])
def test_no_loopback_address_is_sent_to_the_proxy(
    dms: DataMinerSystem, proxy: LoopbackServer, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    """Nothing listens there, so the call fails; through the proxy it would have answered."""
    point_environment_at(monkeypatch, proxy)
    http = add_element(dms, Connection(host=host, port=closed_port(), retry=NO_RETRIES, timeout=5)).http

    with pytest.raises(requests.ConnectionError):
        http.get("/nobody")
    assert proxy.seen == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
        ("localhost", True), ("LocalHost.", True), ("device.localhost", True),
        ("128.0.0.1", False), ("10.0.0.1", False), ("::2", False), ("localhost.example", False),
        ("device", False), ("", False), (None, False),
    ],
)
def test_loopback_hosts_are_told_apart(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("bus_address", "bypass"), [("BypassProxy", True), (" bypassproxy ", True), ("", False), ("1", False)]
)
def test_bus_address_bypass_proxy_is_read_loosely(bus_address: str, bypass: bool) -> None:
    assert Connection(bus_address=bus_address).bypass_proxy is bypass
    assert build_session(Connection(bus_address=bus_address)).trust_env is not bypass


# -- retries, timeouts and dropped connections on a real loopback server ---------------------


def test_a_get_is_retried_on_503_until_it_succeeds(dms: DataMinerSystem, server: LoopbackServer) -> None:
    server.reply(retry_later(), retry_later(), Reply(200, b"finally"))
    http = add_element(dms, loopback(server, retry=FAST_RETRY)).http

    response = http.get("/status")

    assert (response.status_code, response.text) == (200, "finally")
    assert server.count("GET") == 3  # the first try and two retries


def test_after_the_retries_the_last_answer_is_returned_not_raised(dms: DataMinerSystem, server: LoopbackServer) -> None:
    server.reply(retry_later(), retry_later(), retry_later(), Reply(200, b"too late"))
    http = add_element(dms, loopback(server, retry=FAST_RETRY)).http

    response = http.get("/status")

    assert (response.status_code, response.text) == (503, "busy")
    assert server.count("GET") == 3


def test_a_post_is_not_retried_by_default(dms: DataMinerSystem, server: LoopbackServer) -> None:
    server.reply(retry_later(), Reply(201, b"created"))
    http = add_element(dms, loopback(server, retry=FAST_RETRY)).http

    response = http.post("/items", json={"id": "a"})

    assert response.status_code == 503
    assert server.count("POST") == 1


def test_a_post_is_retried_when_the_policy_lists_it(dms: DataMinerSystem, server: LoopbackServer) -> None:
    server.reply(retry_later(), Reply(201, b"created"))
    policy = RetryPolicy(attempts=2, backoff_seconds=0, methods={"GET", "POST"})
    http = add_element(dms, loopback(server, retry=policy)).http

    response = http.post("/items", json={"id": "a"})

    assert response.status_code == 201
    assert [(seen.method, json.loads(seen.body)) for seen in server.seen] == [("POST", {"id": "a"})] * 2


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_each_status_of_the_policy_is_retried_without_a_retry_after(
    dms: DataMinerSystem, server: LoopbackServer, status: int
) -> None:
    server.reply(Reply(status, b"not now"), Reply(200, b"fine"))
    http = add_element(dms, loopback(server, retry=FAST_RETRY)).http

    assert http.get("/status").status_code == 200
    assert server.count("GET") == 2


@pytest.mark.parametrize(("respect", "sleeps"), [(True, [7.0]), (False, [])])
def test_retry_after_is_waited_for_only_when_the_policy_respects_it(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, respect: bool, sleeps: list[float]
) -> None:
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)  # a session's default sleep is the wall clock's
    server.reply(Reply(503, b"busy", (("Retry-After", "7"),)), Reply(200, b"fine"))
    policy = RetryPolicy(attempts=2, backoff_seconds=0, respect_retry_after=respect)
    http = build_session(loopback(server, retry=policy))

    assert http.get("/status").status_code == 200
    assert waited == sleeps
    assert server.count("GET") == 2


def test_status_codes_outside_the_policy_are_not_retried(dms: DataMinerSystem, server: LoopbackServer) -> None:
    server.reply(Reply(500, b"broken"), Reply(200, b"fine"))
    http = add_element(dms, loopback(server, retry=FAST_RETRY)).http

    assert http.get("/status").status_code == 500
    assert server.count() == 1


@pytest.mark.parametrize(
    "policy", [NO_RETRIES, RetryPolicy(attempts=1, backoff_seconds=0)], ids=["no-retries", "one-retry"]
)
def test_a_device_that_does_not_answer_times_out(
    dms: DataMinerSystem, server: LoopbackServer, policy: RetryPolicy
) -> None:
    server.script.default = HANG  # every request hangs until teardown releases the server
    http = add_element(dms, loopback(server, timeout=0.2, retry=policy)).http

    with pytest.raises(requests.Timeout):
        http.get("/slow")
    assert server.count("GET") == 1 + policy.attempts  # a GET that timed out is tried again


def test_a_dropped_connection_raises_after_the_configured_retries(dms: DataMinerSystem, server: LoopbackServer) -> None:
    server.script.default = DROP
    http = add_element(dms, loopback(server, retry=FAST_RETRY)).http

    with pytest.raises(requests.ConnectionError):
        http.get("/gone")
    assert server.count("GET") == 3


def test_a_dropped_post_is_not_retried_by_default(dms: DataMinerSystem, server: LoopbackServer) -> None:
    server.script.default = DROP
    http = add_element(dms, loopback(server, retry=FAST_RETRY)).http

    with pytest.raises(requests.ConnectionError):
        http.post("/items", data=b"x")
    assert server.count("POST") == 1


def test_a_refused_connection_is_retried_then_raised(dms: DataMinerSystem, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as closed:  # bound but not listening: connecting is refused at once
        closed.bind(("127.0.0.1", 0))
        http = add_element(
            dms, Connection(host="127.0.0.1", port=closed.getsockname()[1], bus_address="BypassProxy", retry=FAST_RETRY)
        ).http
        with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"), pytest.raises(requests.ConnectionError):
            http.get("/")
    retries = [record for record in caplog.records if record.getMessage().startswith("Retrying")]
    assert len(retries) == 2


def test_basic_auth_reaches_a_real_server(dms: DataMinerSystem, server: LoopbackServer) -> None:
    http = add_element(dms, loopback(server, username="admin", password=PASSWORD)).http
    http.get("/secure")
    (seen,) = server.seen
    assert base64.b64decode(seen.headers["authorization"].removeprefix("Basic ")).decode() == f"admin:{PASSWORD}"


# -- credentials -----------------------------------------------------------------------------


def test_the_password_is_in_no_repr(dms: DataMinerSystem) -> None:
    connection = Connection(host="device", port=8080, username="admin", password=PASSWORD)
    element = add_element(dms, connection)

    for text in (repr(connection), str(connection), repr(element.http), repr(element), repr(element.connection.retry)):
        assert PASSWORD not in text
    assert "admin" in repr(connection)  # the user name is not a secret


def test_the_password_is_masked_in_the_element_log(dms: DataMinerSystem, caplog: pytest.LogCaptureFixture) -> None:
    element = add_element(dms, Connection(host="device", port=8080, username="admin", password=PASSWORD))
    with caplog.at_level(logging.INFO, logger="dmemu"), responses.RequestsMock() as mock:
        mock.get("http://device:8080/status")
        element.set("Fetch Path", "/status")  # logs the session's auth tuple
        element.set("Fail", 1)  # logs, then raises, with the password in the message

    messages = [entry.message for entry in element.logs()]
    assert any("GET /status answered 200" in message for message in messages)
    assert any("logging in with password ********" in message for message in messages)
    assert any("RuntimeError: device refused password ********" in message for message in messages)
    assert not [message for message in messages if PASSWORD in message]
    assert "dmemu" in caplog.text and PASSWORD not in caplog.text


def test_connection_record_round_trips(tmp_path: Any, dmemu_clock: VirtualClock) -> None:
    policy = RetryPolicy(
        attempts=4, backoff_seconds=0.25, statuses={500, 503}, methods={"GET", "POST"}, respect_retry_after=False
    )
    connection = Connection(
        host="device",
        port=8443,
        bus_address="BypassProxy",
        username="admin",
        password=PASSWORD,
        scheme="https",
        timeout=2.5,
        retry=policy,
    )
    record = connection.to_record()
    assert json.loads(json.dumps(record)) == record  # plain data for the registry file
    assert Connection.from_record(json.loads(json.dumps(record))) == connection
    assert Connection.from_record(Connection().to_record()) == Connection()

    with DataMinerSystem(tmp_path / "state", dmemu_clock) as first:
        first.create_element(HttpProbe, "kept", connection=connection)
    with DataMinerSystem(tmp_path / "state", dmemu_clock) as second:
        assert second.element("kept").connection == connection


# -- end to end: a QAction on a timer fills a table from the device ---------------------------


def test_the_example_poller_fills_its_table_from_the_device_on_its_timer(
    dms: DataMinerSystem, dmemu_clock: VirtualClock, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "examples"))
    from tiny_poller import TinyPoller

    server.reply(
        json_reply([{"id": "a", "name": "Alpha", "value": 1}, {"id": "b", "name": "Beta", "value": 2}]),
        json_reply([{"id": "b", "name": "Beta", "value": 20}, {"id": "c", "name": "Gamma", "value": 3}]),
    )
    server.script.default = Reply(503, b"busy")
    element = add_element(dms, loopback(server, retry=NO_RETRIES), protocol=TinyPoller)
    items = element.table("Items")
    assert items.keys() == ["a", "b"]  # polled once at start-up
    assert items.row("a") == {"ID": "a", "Name": "Alpha", "Value": 1}
    assert element.get("Last HTTP Status") == 200

    dmemu_clock.advance(59)
    assert len(server.seen) == 1  # not yet due
    dmemu_clock.advance(1)
    assert items.keys() == ["b", "c"]
    assert items.row("b")["Value"] == 20

    dmemu_clock.advance(60)  # the device is busy: the table is kept
    assert items.keys() == ["b", "c"]
    assert element.get("Last HTTP Status") == 503
    assert any("answered 503; table kept" in entry.message for entry in element.logs())
    assert [(seen.method, seen.path) for seen in server.seen] == [("GET", "/items")] * 3


@responses.activate
def test_the_elements_credentials_go_to_its_own_device_only():
    responses.get("http://10.1.1.1:8080/own", json={})
    responses.get("http://elsewhere.example:9000/other", json={})
    session = build_session(Connection(host="10.1.1.1", port=8080, username="admin", password="pw"))
    session.get("/own")
    session.get("http://elsewhere.example:9000/other")
    session.get("http://elsewhere.example:9000/other", auth=("guest", "x"))  # explicit auth is the caller's choice
    own, other, explicit = (call.request.headers.get("Authorization") for call in responses.calls)
    assert own and own.startswith("Basic ")
    assert other is None
    assert explicit and explicit != own


def test_a_long_retry_after_is_capped_and_waits_go_through_the_given_sleep(server: LoopbackServer) -> None:
    waited: list[float] = []
    server.reply(Reply(503, b"busy", (("Retry-After", "3600"),)), Reply(503, b"busy"), Reply(200, b"fine"))
    policy = RetryPolicy(attempts=2, backoff_seconds=0.25, max_retry_after_seconds=5)
    session = build_session(loopback(server, retry=policy), sleep=waited.append)
    assert session.get("/capped").status_code == 200
    assert waited == [5, 0.5]  # the capped Retry-After, then urllib3's backoff for a second retry


def test_on_a_virtual_clock_retries_take_no_wall_time(dms: DataMinerSystem, server: LoopbackServer) -> None:
    server.reply(Reply(503, b"busy", (("Retry-After", "30"),)), Reply(200, b"fine"))
    http = add_element(dms, loopback(server, retry=RetryPolicy(attempts=1))).http
    assert http.get("/later").status_code == 200  # time.sleep would fail this test


@pytest.mark.parametrize(
    ("connection", "target"),
    [
        (Connection(host="10.0.0.5", port=8080, bus_address=BYPASS_PROXY), ("10.0.0.5", 8080)),
        (Connection(host="osb.example", bus_address=BYPASS_PROXY), ("osb.example", 80)),
        (Connection(host="10.0.0.5", port=8080), None),  # proxies from the environment may apply
        (Connection(host="10.0.0.5", port=443, bus_address=BYPASS_PROXY), None),  # https
        (Connection(host="10.0.0.5", port=8080, bus_address=BYPASS_PROXY, username="u", password="p"), None),
        (Connection(host="10.0.0.5", port=8080, bus_address=BYPASS_PROXY, retry=RetryPolicy(methods={"POST"})), None),
    ],
)
def test_a_post_goes_over_a_plain_stream_only_when_the_session_would_add_nothing(connection: Connection, target: tuple[str, int] | None) -> None:
    assert plain_http_target(connection, default_port=80) == target
