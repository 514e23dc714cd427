"""The DataMiner System's services as a QAction reaches them (`protocol.tickets`,
`protocol.active_alarms`, `protocol.run_script`, `protocol.send_request`, ...): the system's
side of the engine's seam, `dmemu.protocol.host.QActionServices`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .ticketing import QActionTicketing

if TYPE_CHECKING:
    from ..protocol.element import Element, ElementRef
    from ..protocol.messages import Reply, Request
    from ..protocol.qaction import QActionProtocol, SetStatus
    from .alarms import Alarm, Severity
    from .automation import ScriptRun
    from .system import DataMinerSystem


class DmsQActionServices:
    """Implements `QActionServices` over one DataMinerSystem's alarms, automation, ticketing
    and request routing."""

    __slots__ = ("_dms",)

    def __init__(self, dms: DataMinerSystem) -> None:
        self._dms = dms

    def has_licence(self, name: str) -> bool:
        return name in self._dms.licences

    def tickets(self, element: Element, depth: int) -> QActionTicketing:
        return QActionTicketing(self._dms.tickets, depth, element.ids)

    def active_alarms(self, element: Element, *, severity: Severity | None, parameter: int | str | None) -> list[Alarm]:
        return self._dms.alarms.active(element, severity=severity, parameter=parameter)

    def set_alarm_property(self, alarm_id: int, key: str, value: str) -> None:
        self._dms.alarms.set_property(alarm_id, key, value)

    def run_script(self, name: str, input: Any) -> ScriptRun:
        return self._dms.automation.run(name, input)

    def send_request(self, sender: QActionProtocol, element: ElementRef, parameter: int | str, request: Request, depth: int) -> None:
        self._dms.requests.send(sender, element, parameter, request, depth)

    def reply(self, sender: QActionProtocol, request: Request, reply: Reply, depth: int) -> SetStatus:
        return self._dms.requests.reply(sender, request, reply, depth)
