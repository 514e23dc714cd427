"""Faults on demand and the request log: what test harnesses use to rehearse bad days.

A `Fault` matches requests of one API (or all), by request number (1-based, per API) or by
list page (``offset // limit``), optionally with a probability that is reproducible from a
seed. It answers a status (with ``Retry-After``), only waits (``latency``, then the real
answer), or breaks the answer: malformed JSON, a truncated body, or a connection dropped
without an answer. Any kind may wait first.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from typing import Any, Literal

import attrs

FaultKind = Literal["status", "latency", "malformed", "truncated", "drop"]
KINDS: tuple[str, ...] = ("status", "latency", "malformed", "truncated", "drop")


def _optional_frozenset(value: Iterable[int] | None) -> frozenset[int] | None:
    return None if value is None else frozenset(value)


@attrs.frozen
class Fault:
    api: str = "*"  # "tmf638", "tmf639", "tmf656", "tmf642" or "*"
    kind: FaultKind = "status"
    status: int = 503
    retry_after: float | None = None
    latency: float = 0.0  # seconds to wait before answering (or breaking the answer)
    requests: frozenset[int] | None = attrs.field(default=None, converter=_optional_frozenset)
    pages: frozenset[int] | None = attrs.field(default=None, converter=_optional_frozenset)
    method: str | None = None
    probability: float = 1.0

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"fault status {self.status} is not an HTTP status")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"fault probability {self.probability} is not between 0 and 1")
        if self.latency < 0:
            raise ValueError(f"fault latency {self.latency} is negative")

    def matches(self, api: str, method: str, number: int, page: int | None, seed: str) -> bool:
        if self.api not in ("*", api) or (self.method is not None and self.method != method):
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
        data = attrs.asdict(self)
        for name in ("requests", "pages"):
            if data[name] is not None:
                data[name] = sorted(data[name])
        return data


@attrs.frozen
class RequestRecord:
    number: int  # per API, from 1
    api: str
    method: str
    path: str  # with the query string
    status: int  # 0 when the connection was dropped
    fault: str | None


class FaultPlan:
    """The faults a simulator applies, and the log of what came in; thread-safe."""

    def __init__(self, seed: int = 1) -> None:
        self.seed = seed
        self._faults: list[Fault] = []
        self._counters: dict[str, int] = {}
        self._log: list[RequestRecord] = []
        self._lock = threading.Lock()

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def next_number(self, api: str) -> int:
        with self._lock:
            self._counters[api] = number = self._counters.get(api, 0) + 1
            return number

    def fault_for(self, api: str, method: str, number: int, page: int | None) -> Fault | None:
        with self._lock:
            faults = list(self._faults)
        # Each fault draws on its own seed, so two probabilistic faults do not always coincide.
        return next(
            (f for index, f in enumerate(faults) if f.matches(api, method, number, page, f"{self.seed}:{index}")), None
        )

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
