"""An element's HTTP connection: a `requests.Session` built from its connection settings.

Every call has a timeout, retries follow an explicit policy, ``BypassProxy`` ignores proxy
settings from the environment, loopback (127.0.0.0/8, ::1, localhost) is never proxied, and
credentials go in basic auth, never in a repr or a log. Settings are checked when a
`Connection` is made: a bad one raises `ConnectionSettingError` naming the field.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import attrs
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from .errors import ConnectionSettingError

BYPASS_PROXY = "BypassProxy"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@attrs.frozen
class RetryPolicy:
    """When a failed call is tried again. POST and PATCH are not retried unless listed."""

    attempts: int = 2  # retries after the first try
    # urllib3's exponential backoff: no wait before the first retry, then 2x, 4x ... this value.
    backoff_seconds: float = 0.5
    statuses: frozenset[int] = attrs.field(default=frozenset({429, 502, 503, 504}), converter=frozenset)
    methods: frozenset[str] = attrs.field(default=IDEMPOTENT_METHODS, converter=frozenset)
    respect_retry_after: bool = True
    # A device asking for a longer Retry-After would hold the element's queue that long.
    max_retry_after_seconds: float = 60

    def to_urllib3(self, sleep: Callable[[float], None] | None = None) -> Retry:
        """The policy for urllib3; waits between attempts go through `sleep` (the DMS clock's)."""
        return _ElementRetry(
            sleep=sleep or _wall_clock_sleep,
            max_retry_after=self.max_retry_after_seconds,
            total=self.attempts,
            connect=self.attempts,
            read=self.attempts,
            status=self.attempts,
            other=0,
            redirect=3,
            allowed_methods=self.methods,
            status_forcelist=self.statuses,
            backoff_factor=self.backoff_seconds,
            respect_retry_after_header=self.respect_retry_after,
            raise_on_status=False,  # the last answer is returned; the caller reads its status
        )


NO_RETRIES = RetryPolicy(attempts=0)


def _wall_clock_sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up at call time, so tests can replace time.sleep


class _ElementRetry(Retry):
    """urllib3's Retry, waiting through an injected sleep and capping a device's Retry-After."""

    def __init__(self, *args: Any, sleep: Callable[[float], None] = _wall_clock_sleep, max_retry_after: float = 60, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sleep = sleep
        self._max_retry_after = max_retry_after

    def new(self, **kwargs: Any) -> _ElementRetry:
        # urllib3 makes a new Retry per attempt from its own parameters only.
        return super().new(sleep=self._sleep, max_retry_after=self._max_retry_after, **kwargs)  # type: ignore[return-value]

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self._max_retry_after)

    def sleep(self, response: Any = None) -> None:
        if self.respect_retry_after_header and response is not None:
            seconds = self.get_retry_after(response)
            if seconds:
                self._sleep(seconds)
                return
        backoff = self.get_backoff_time()
        if backoff > 0:
            self._sleep(backoff)


@attrs.frozen
class Connection:
    """How an element reaches its device: host, port, bus address and optional credentials."""

    host: str = "127.0.0.1"
    port: int | None = None
    bus_address: str = ""
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    scheme: str | None = None  # http or https; by default https on port 443, http otherwise
    timeout: float = 30.0
    retry: RetryPolicy = RetryPolicy()

    def __attrs_post_init__(self) -> None:
        _check_connection(self)

    @property
    def bypass_proxy(self) -> bool:
        return self.bus_address.strip().lower() == BYPASS_PROXY.lower()

    def base_url(self, default_port: int = 443) -> str:
        port = self.port if self.port is not None else default_port
        host_scheme, _, host = self.host.rpartition("://")  # a scheme written in the host counts
        scheme = self.scheme or host_scheme or ("https" if port == 443 else "http")
        host = host.rstrip("/")
        if ":" in host:  # only an IPv6 literal has one (parsing every host costs, per poll round)
            try:
                if ipaddress.ip_address(host).version == 6:
                    host = f"[{host}]"  # an IPv6 literal is bracketed in a URL
            except ValueError:
                pass  # already bracketed
        return f"{scheme.lower()}://{host}:{port}"

    def to_record(self) -> dict[str, Any]:
        """The settings as plain data for the DMS registry (the password included: it is state)."""
        record = attrs.asdict(self, recurse=False)
        record["retry"] = attrs.asdict(
            self.retry, value_serializer=lambda _, __, value: sorted(value) if isinstance(value, frozenset) else value
        )
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Connection:
        fields = dict(record)
        fields["retry"] = RetryPolicy(**fields.get("retry", {}))
        return cls(**fields)


SCHEMES = ("http", "https")


def _check_connection(connection: Connection) -> None:
    """Refuse settings that would only fail at every poll, naming the field and the value."""

    def refuse(field: str, why: str) -> None:
        value = getattr(connection, field)
        raise ConnectionSettingError(f"connection {field}={value!r}: {why}", field=field, value=value)

    host = connection.host
    if not isinstance(host, str):
        refuse("host", "the host is a string: a name or an IP address")
    host_scheme, _, bare_host = host.rpartition("://")
    if not bare_host.strip("/") or any(c.isspace() for c in host):
        refuse("host", "the host is a non-empty name or IP address without spaces")
    if host_scheme and host_scheme.lower() not in SCHEMES:
        refuse("host", f"a scheme written in the host is one of {', '.join(SCHEMES)}")
    port = connection.port
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535):
        refuse("port", "a port is a whole number from 1 to 65535 (or None for the protocol's default port)")
    bus_address = connection.bus_address
    if not isinstance(bus_address, str):
        refuse("bus_address", f"the bus address is a string, {BYPASS_PROXY!r} or empty")
    if _misspelt_bypass_proxy(bus_address.strip().lower()):
        refuse("bus_address", f"did you mean {BYPASS_PROXY!r}? As written, proxies from the environment are used")
    if connection.scheme is not None and (not isinstance(connection.scheme, str) or connection.scheme.lower() not in SCHEMES):
        refuse("scheme", f"the scheme is one of {', '.join(SCHEMES)}, or None to choose by port")
    timeout = connection.timeout
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not (0 < timeout < math.inf):
        refuse("timeout", "the timeout is a positive, finite number of seconds")
    for field in ("username", "password"):
        value = getattr(connection, field)
        if value is not None and not isinstance(value, str):
            # The password's value stays out of the message, as out of every repr.
            kind = type(value).__name__
            raise ConnectionSettingError(f"connection {field} is a {kind}; it is a string or None", field=field, value=value)
    if not isinstance(connection.retry, RetryPolicy):
        refuse("retry", "the retry policy is a RetryPolicy")


def _misspelt_bypass_proxy(normalized: str) -> bool:
    """Whether a bus address (stripped, lower case) is a near miss of ``BypassProxy``.

    Cheap bounds first: a `Connection` is made per poll round by some connectors, and their bus
    address (mostly empty) is far from it by its length alone."""
    wanted = _BYPASS_PROXY_LOWER
    if normalized == wanted:
        return False
    # The ratio is 2 * matches / total length, and matches never exceed the shorter string
    # (in integers: 2 * shorter / total < 4 / 5).
    if 10 * min(len(normalized), len(wanted)) < 4 * (len(normalized) + len(wanted)):
        return False
    matcher = difflib.SequenceMatcher(None, normalized, wanted)
    return matcher.quick_ratio() >= 0.8 and matcher.ratio() >= 0.8


_BYPASS_PROXY_LOWER = BYPASS_PROXY.lower()


@functools.lru_cache(maxsize=256)  # a connection is immutable; an element posting asks on every post
def plain_http_target(connection: Connection, default_port: int = 443) -> tuple[str, int] | None:
    """(host, port) when a ``POST`` to `connection` may go over a plain kept-alive TCP stream
    (`SerialPort.http_exchange`) and reach the device as `build_session`'s session would send
    it: plain http, proxies bypassed (so nothing is taken from the environment), no credentials,
    and a POST that its retry policy does not retry. None otherwise: use the session.

    A session's call costs about half a millisecond of Python (requests and urllib3) besides
    the exchange itself; an element posting to a service all the time can spare that."""
    if not connection.bypass_proxy or connection.username or connection.password or "POST" in connection.retry.methods:
        return None
    parts = urlsplit(connection.base_url(default_port))
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        return None
    return parts.hostname, parts.port


class ElementSession(requests.Session):
    """A session whose relative URLs start at the element's base URL and whose calls time out."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        url = urljoin(self.base_url, url)
        if "auth" not in kwargs and urlsplit(url).netloc != urlsplit(self.base_url).netloc:
            kwargs["auth"] = _no_auth  # the element's credentials are for its own device only
        return super().request(method, url, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<ElementSession {self.base_url}>"


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` (and names under it), 127.0.0.0/8 and ::1: this machine itself."""
    if not host:
        return False
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is loopback too
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


class _ElementAdapter(HTTPAdapter):
    """An adapter that never proxies loopback and reports a read timeout as `requests.ReadTimeout`.

    A proxy cannot reach this machine's loopback for us, so a request to 127.0.0.0/8, ::1 or
    localhost goes direct whatever HTTP(S)_PROXY/ALL_PROXY say; other hosts keep the proxies the
    session chose (the environment's unless ``BypassProxy``). Deciding here, where every request
    and every redirect is sent, covers them all.

    Once urllib3 counts a read timeout against a `Retry` (a GET with read retries left, or
    none left), it raises MaxRetryError, which requests turns into a plain ConnectionError.
    Callers catching `requests.Timeout` would miss it; this puts the timeout back.
    """

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        if proxies and is_loopback_host(urlsplit(request.url or "").hostname):
            proxies = {}
        try:
            return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        except requests.ConnectionError as error:
            cause = error.args[0] if error.args else None
            if isinstance(getattr(cause, "reason", None), ReadTimeoutError):
                raise requests.ReadTimeout(cause, request=request) from error
            raise


def build_session(
    connection: Connection,
    *,
    default_port: int = 443,
    auth: tuple[str, str] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> ElementSession:
    """A session for `connection`: base URL, timeout, retry policy, proxy choice, basic auth.

    Waits between retries go through `sleep` (a virtual clock's takes no wall time)."""
    session = ElementSession(connection.base_url(default_port), connection.timeout)
    if connection.bypass_proxy:
        session.trust_env = False  # no proxies (nor netrc, nor CA bundle) from the environment
        session.proxies.clear()
    adapter = _ElementAdapter(max_retries=connection.retry.to_urllib3(sleep))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if auth is None and connection.username:
        auth = (connection.username, connection.password or "")
    if auth is not None:
        session.auth = auth
    return session
