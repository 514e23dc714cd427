"""Faults on demand and the request log: what test harnesses use to rehearse bad days.

A `Fault` matches requests of one API (or all), by request number (1-based, per API) or by
list page (``offset // limit``), optionally narrowed to a route: a method, the collection or
one item (``target``), the TMF v4 or the SES paths (``paths``), and query parameters with
given values (``query={"@type": "element"}`` faults only the carrier pages). A probability
makes it hit some of those, reproducibly from a seed. It answers a status (with
``Retry-After`` when `retry_after` is set, in whole seconds), only waits (``latency``, then
the real answer), or breaks the answer: malformed JSON, a truncated body, or a connection
dropped without an answer, either before the request takes effect (``drop``) or after
(``lost``: the create or patch is done, its answer never arrives, so a client that retries
makes a duplicate unless it checks first). Any kind may wait first.

A ``rate_limit`` fault lets `limit` of the requests it matches through in any `per` seconds of
the simulator's clock (a sliding window) and answers the others 429 Too Many Requests, with
``Retry-After``: `retry_after` when given, else the whole seconds until the window lets one
through again. Refused requests do not count against the limit.

The OSB ticketing service (api ``osb``) is one endpoint taking SOAP operations: a fault there
may be narrowed to an ``operation`` (``CreateTicketRequest``, ...), and two kinds of business
answer are its own: ``nack`` refuses a search, create, update or close (HTTP 200, Result NACK,
no effect) and ``fail`` ACKs a create, update or close whose asynchronous result is then FAILED
(it never takes effect).
"""

from __future__ import annotations

import collections
import math
import random
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import attrs

from .osb import OPERATIONS, SEARCH, WRITE_OPERATIONS

FaultKind = Literal["status", "latency", "malformed", "truncated", "drop", "lost", "rate_limit", "nack", "fail"]
KINDS: tuple[str, ...] = ("status", "latency", "malformed", "truncated", "drop", "lost", "rate_limit", "nack", "fail")
# The OSB's business answers, and the operations each can hit (it hits no other request).
OPERATION_KINDS: Mapping[str, tuple[str, ...]] = MappingProxyType({"nack": (SEARCH, *WRITE_OPERATIONS), "fail": WRITE_OPERATIONS})
RATE_LIMITED = 429  # what a rate_limit fault answers
APIS: tuple[str, ...] = ("tmf638", "tmf639", "tmf656", "tmf642", "osb", "*")
METHODS: tuple[str, ...] = ("GET", "POST", "PATCH", "DELETE")
TARGETS: tuple[str, ...] = ("collection", "item")  # list or create, or one item
PATH_FAMILIES: tuple[str, ...] = ("tmf", "ses", "v3")  # the TMF v4 paths, SES's gstm paths, TMF656's v3 path
BODY_LOG_LIMIT = 64 * 1024  # bytes of a request body the log keeps
LOG_LIMIT = 100_000  # requests the log keeps, the newest
MAX_LATENCY = 86_400  # seconds: a day outlasts any client's timeout, and time.sleep takes it
MASKED_HEADERS = ("authorization", "proxy-authorization")


def _optional_frozenset(value: Iterable[int] | None) -> frozenset[int] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(f"{value!r} is not a collection of request or page numbers")
    numbers = frozenset(value)
    wrong = sorted(repr(number) for number in numbers if type(number) is not int or number < 0)
    if wrong:
        raise ValueError(f"request and page numbers are whole numbers from 0, not {', '.join(wrong)}")
    return numbers


def _optional_query(value: Mapping[str, str] | None) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"fault query {value!r} is not a mapping of parameter names to values")
    wrong = [f"{name!r}: {text!r}" for name, text in value.items() if not (isinstance(name, str) and isinstance(text, str))]
    if wrong:
        raise ValueError(f"fault query parameters and values are strings, not {', '.join(wrong)}")
    return MappingProxyType(dict(value))  # read-only, as the fault is frozen


def _is_number(value: Any) -> bool:
    """A finite int or float, not a bool: NaN or infinite seconds would break every answer they touch."""
    return type(value) in (int, float) and math.isfinite(value)


def _one_of(what: str, allowed: tuple[str, ...], *, optional: bool = False) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and optional:
            return
        if value not in allowed:
            raise ValueError(f"fault {what} {value!r} is not one of {', '.join(allowed)}{' or None' if optional else ''}")

    return check


@attrs.frozen
class Fault:
    api: str = attrs.field(default="*", validator=_one_of("api", APIS))
    kind: FaultKind = "status"
    status: int = 503
    retry_after: float | None = None  # seconds; sent as Retry-After (rounded up) with a status
    latency: float = 0.0  # seconds to wait before answering (or breaking the answer)
    requests: frozenset[int] | None = attrs.field(default=None, converter=_optional_frozenset)
    pages: frozenset[int] | None = attrs.field(default=None, converter=_optional_frozenset)
    method: str | None = attrs.field(default=None, validator=_one_of("method", METHODS, optional=True))
    probability: float = 1.0
    target: Literal["collection", "item"] | None = attrs.field(default=None, validator=_one_of("target", TARGETS, optional=True))
    paths: Literal["tmf", "ses", "v3"] | None = attrs.field(default=None, validator=_one_of("paths", PATH_FAMILIES, optional=True))
    # Compared, not hashed: a mapping has no hash, and equal faults still hash alike without it.
    query: Mapping[str, str] | None = attrs.field(default=None, converter=_optional_query, hash=False)
    limit: int | None = None  # rate_limit: requests let through per window
    per: float | None = None  # rate_limit: the window, in seconds of the simulator's clock
    operation: str | None = attrs.field(default=None, validator=_one_of("operation", OPERATIONS, optional=True))  # OSB only

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if type(self.status) is not int or not 400 <= self.status <= 599:
            raise ValueError(f"fault status {self.status!r} is not an HTTP error status (400 to 599)")
        if not _is_number(self.probability) or not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"fault probability {self.probability!r} is not between 0 and 1")
        if not _is_number(self.latency) or not 0 <= self.latency <= MAX_LATENCY:
            raise ValueError(f"fault latency {self.latency!r} is not a number of seconds from 0 to {MAX_LATENCY}")
        if self.retry_after is not None and (not _is_number(self.retry_after) or self.retry_after < 0):
            raise ValueError(f"fault retry_after {self.retry_after!r} is not a number of seconds from 0")
        if (self.kind in OPERATION_KINDS or self.operation is not None) and self.api not in ("osb", "*"):
            what = f"kind {self.kind!r}" if self.kind in OPERATION_KINDS else "operation"
            raise ValueError(f"fault {what} is for the OSB ticketing service (api 'osb'), not {self.api!r}")
        if self.kind != "rate_limit":
            if self.limit is not None or self.per is not None:
                raise ValueError(f"fault limit and per are for kind 'rate_limit', not {self.kind!r}")
            return
        if type(self.limit) is not int or self.limit < 0:
            raise ValueError(f"fault limit {self.limit!r} is not a whole number of requests from 0")
        if not _is_number(self.per) or self.per <= 0:  # type: ignore[arg-type]
            raise ValueError(f"fault per {self.per!r} is not a number of seconds above 0")
        if self.status not in (503, RATE_LIMITED):  # 503 is the default: left alone
            raise ValueError(f"fault status {self.status!r}: a rate_limit fault answers {RATE_LIMITED}")

    def matches(
        self,
        api: str,
        method: str,
        number: int,
        page: int | None,
        seed: str,
        *,
        target: str | None = None,
        paths: str | None = None,
        query: Mapping[str, Iterable[str]] | None = None,
        operation: str | None = None,
    ) -> bool:
        """Whether this fault hits a request. `target`, `paths`, `query` (each parameter's
        values) and `operation` (the OSB's) describe its route; a fault narrowed to a route the
        caller does not describe does not hit."""
        if self.api not in ("*", api) or (self.method is not None and self.method != method):
            return False
        if (self.operation is not None and self.operation != operation) or operation not in OPERATION_KINDS.get(self.kind, (operation,)):
            return False
        if (self.target is not None and self.target != target) or (self.paths is not None and self.paths != paths):
            return False
        if self.query is not None and not all(value in (query or {}).get(name, ()) for name, value in self.query.items()):
            return False
        if self.requests is not None and number not in self.requests:
            return False
        if self.pages is not None and page not in self.pages:
            return False
        if self.probability < 1.0:
            return random.Random(f"{seed}:{api}:{number}").random() < self.probability  # seed names the fault too
        return True

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise ValueError("a fault is a JSON object")
        unknown = set(data) - {field.name for field in attrs.fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault attributes: {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        for name in ("requests", "pages"):
            if data[name] is not None:
                data[name] = sorted(data[name])
        if data["query"] is not None:
            data["query"] = dict(data["query"])
        return data

    @property
    def retry_after_header(self) -> str | None:
        """The Retry-After value: delay-seconds is a whole number (RFC 9110), so rounded up."""
        return None if self.retry_after is None else str(math.ceil(self.retry_after))


@attrs.frozen
class RequestRecord:
    number: int  # per API, from 1
    api: str
    method: str
    path: str  # with the query string
    status: int  # 0 when the connection was dropped; a lost answer's own status
    fault: str | None
    query: dict[str, str] = attrs.field(factory=dict, hash=False)  # the last value of each parameter
    headers: dict[str, str] = attrs.field(factory=dict, hash=False)  # credentials masked (`masked_headers`)
    body: str = ""  # as text, cut at BODY_LOG_LIMIT bytes
    time: float = 0.0  # epoch seconds (wall clock) when the request came in
    operation: str | None = None  # the OSB operation asked, when the body named one


def masked_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers for the log: credentials keep their scheme only (``Basic ***``)."""
    logged: dict[str, str] = {}
    for name, value in headers:
        if name.lower() in MASKED_HEADERS:
            value = f"{value.split(' ', 1)[0]} ***" if value.strip() else "***"
        logged[name] = value
    return logged


def logged_body(body: bytes) -> str:
    """A request body as the log keeps it: its first BODY_LOG_LIMIT bytes as text (undecodable bytes replaced)."""
    return body[:BODY_LOG_LIMIT].decode("utf-8", errors="replace")


class FaultPlan:
    """The faults a simulator applies, and the log of what came in; thread-safe.

    The log keeps the newest `log_limit` requests, so a simulator left running for days does
    not grow without end; request numbers keep counting past it."""

    def __init__(self, seed: int = 1, *, log_limit: int = LOG_LIMIT) -> None:
        if type(log_limit) is not int or log_limit < 1:
            raise ValueError(f"log_limit {log_limit!r} is not a whole number from 1")
        self.seed = seed
        self._faults: list[Fault] = []
        self._counters: dict[str, int] = {}
        self._log: collections.deque[RequestRecord] = collections.deque(maxlen=log_limit)
        self._admitted: dict[int, collections.deque[float]] = {}  # rate_limit fault's index -> times let through
        self._lock = threading.Lock()

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._admitted.clear()

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def next_number(self, api: str) -> int:
        with self._lock:
            self._counters[api] = number = self._counters.get(api, 0) + 1
            return number

    def fault_for(
        self,
        api: str,
        method: str,
        number: int,
        page: int | None,
        *,
        target: str | None = None,
        paths: str | None = None,
        query: Mapping[str, Iterable[str]] | None = None,
        operation: str | None = None,
        now: float = 0.0,
    ) -> Fault | None:
        """The first fault that hits this request (see `Fault.matches`), or None. A rate_limit
        fault hits only beyond its limit (`now` is the simulator's time), and comes back with
        the Retry-After it answers."""
        with self._lock:
            faults = list(self._faults)
        # Each fault draws on its own seed, so two probabilistic faults do not always coincide.
        for index, fault in enumerate(faults):
            seed = f"{self.seed}:{index}"
            if not fault.matches(api, method, number, page, seed, target=target, paths=paths, query=query, operation=operation):
                continue
            if fault.kind != "rate_limit":
                return fault
            wait = self._rate_limited(index, fault, now)
            if wait is not None:
                return fault if fault.retry_after is not None else attrs.evolve(fault, retry_after=wait)
        return None

    def _rate_limited(self, index: int, fault: Fault, now: float) -> float | None:
        """None when the window lets this request through (it is counted), else the seconds until it would."""
        assert fault.limit is not None and fault.per is not None
        with self._lock:
            admitted = self._admitted.setdefault(index, collections.deque())
            while admitted and admitted[0] <= now - fault.per:
                admitted.popleft()
            if len(admitted) < fault.limit:
                admitted.append(now)
                return None
            return max(1.0, (admitted[0] + fault.per - now) if admitted else fault.per)

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    def requests(self, api: str | None = None) -> list[RequestRecord]:
        """What came in (optionally for one API), in arrival order."""
        with self._lock:
            return [r for r in self._log if api is None or r.api == api]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._counters.clear()
