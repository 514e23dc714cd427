"""The seam between the engine and the system its elements run in.

An element lives in a host (the DataMiner System, `dmemu.dms`) and a QAction reaches the
system's services (ticketing, alarms, automation, requests between elements) through it. The
engine calls nothing of the system but what these two typing protocols list, so no engine
module imports the system: the system builds on the engine, never the other way round.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .clock import Clock
    from .element import Element, ElementRef
    from .messages import Reply, Request
    from .qaction import QActionProtocol, SetStatus


class QActionServices(typing.Protocol):
    """What the system offers a QAction beyond its own element (`QActionProtocol` delegates here).

    `depth` is the QAction chain depth of the caller, carried onto what the call sets off so a
    loop through other elements or ticket events meets the loop guard."""

    def has_licence(self, name: str) -> bool:
        """Whether the system holds the DataMiner licence `name` (e.g. "Ticketing")."""
        ...

    def tickets(self, element: Element, depth: int) -> Any:
        """The system's ticketing as a QAction of `element` uses it (`dmemu.dms.QActionTicketing`)."""
        ...

    def active_alarms(self, element: Element, *, severity: Any, parameter: int | str | None) -> list[Any]:
        """The element's active alarms (`dmemu.dms.Alarm`), oldest first."""
        ...

    def set_alarm_property(self, alarm_id: int, key: str, value: str) -> None:
        """Raises a `DmemuError` naming what was refused."""
        ...

    def run_script(self, name: str, input: Any) -> Any:
        """Starts an automation script once the running QAction is done (`dmemu.dms.ScriptRun`)."""
        ...

    def send_request(
        self, sender: QActionProtocol, element: ElementRef, parameter: int | str, request: Request, depth: int
    ) -> None:
        """Deliver `request` on another element's parameter; an undeliverable one is answered
        with an error reply on the sender's reply parameter, never dropped in silence."""
        ...

    def reply(self, sender: QActionProtocol, request: Request, reply: Reply, depth: int) -> SetStatus:
        """Set `reply` on the parameter `request` asked to be answered on."""
        ...


class ElementHost(typing.Protocol):
    """The system an element runs in, as the engine sees it."""

    clock: Clock
    qaction_services: QActionServices

    def find(self, ref: ElementRef) -> Element | None: ...

    def get_parameter(self, ref: ElementRef, parameter: int | str) -> Any: ...

    def set_parameter(self, ref: ElementRef, parameter: int | str, value: Any, *, _depth: int = 0) -> None: ...

    def _element_state_changed(self, element: Element, *, write_now: bool = False) -> None:
        """The element started, paused or stopped (the host records it in its registry)."""
        ...

    def _element_dirty(self, element: Element) -> None:
        """The element has saved values not yet written (the host saves them in its next batch)."""
        ...

    def _write_registry_if_dirty(self) -> None:
        """Written before an element's file, so no file exists that the registry does not name."""
        ...
