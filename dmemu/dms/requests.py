"""Requests between elements: a QAction asks another element something and hears the answer
on a parameter of its own, as the Telenet Ticket Gateway is asked.

The envelope (`Request`, `Reply`) is the engine's (`dmemu.protocol.messages`), since the QActions
on both sides read and write it; this module routes it through the DataMiner System: delivery on
the target's queue, error replies for what cannot be delivered, and replies cut to fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol.errors import DmemuError, ElementNotFoundError
from ..protocol.logs import LogType
from ..protocol.measurement import String
from ..protocol.messages import Reply, Request
from ..protocol.queue import CancellableItem

if TYPE_CHECKING:
    from ..protocol.element import Element, ElementRef
    from ..protocol.qaction import QActionProtocol, SetStatus
    from .system import DataMinerSystem


class ElementRequests:
    """The DMS's routing of requests and replies between its elements."""

    def __init__(self, dms: DataMinerSystem) -> None:
        self._dms = dms

    def send(self, sender: QActionProtocol, element: ElementRef, parameter: int | str, request: Request, depth: int) -> None:
        text = request._text_to_send()  # encoded once: the sender's check did it
        try:
            target = self._dms.find(element)
            if target is None:
                # Only the missing reference: a list of every element would not fit a reply parameter.
                raise ElementNotFoundError(f"no element {element!r} in this DMS")
            pid, value = target._checked_user_set(parameter, text)
            # An item of its own rather than a plain set: dropped by a stop, or failing on a paused
            # element, it still answers the caller.
            target._queue.run(_RequestDelivery(self, sender, request, element, parameter, target, pid, value, depth))
        except DmemuError as error:
            self.not_delivered(sender, request, element, parameter, error, depth)

    def not_delivered(
        self, sender: QActionProtocol, request: Request, element: ElementRef, parameter: int | str, error: Exception, depth: int
    ) -> None:
        sender.element.log(f"request {request.id} to element {element!r} parameter {parameter!r} not delivered: {error}", LogType.ERROR)
        self.reply(sender, request, Reply(request.id, error=f"request not delivered to element {element!r}: {error}"), depth)

    def reply(self, sender: QActionProtocol, request: Request, reply: Reply, depth: int) -> SetStatus:
        address = request.reply_to
        caller = self._dms.find(address.element)  # once, for the limit and the set
        text = _fitted(reply, _text_limit(caller, address.parameter))
        return sender._set_on(address.element, address.parameter, text, depth, found=caller)


def _text_limit(caller: Element | None, parameter: int) -> int | None:
    """The max length of string parameter `parameter` of `caller`, None when unlimited or unknown."""
    spec = None if caller is None else caller._model.parameters.get(parameter)
    return spec.type.max_length if spec is not None and isinstance(spec.type, String) else None


def _fitted(reply: Reply, limit: int | None) -> str:
    """The reply as JSON text of at most `limit` characters where its error text can be cut to
    fit (marked ``...``); a body is never cut, so such a reply stays as long as it is."""
    text = reply.to_json()
    error = reply.error
    if limit is None or error is None or len(text) <= limit:
        return text

    def cut(keep: int) -> str:
        return Reply(reply.id, reply.body, error[:keep] + "...").to_json()

    # The longest prefix that fits: escapes (quotes, non-ASCII) make the JSON longer than the text.
    low, high = 0, len(error)
    while low < high:
        middle = (low + high + 1) // 2
        if len(cut(middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return cut(low)  # may still be too long (a tiny limit): the set then refuses it and is logged


class _RequestDelivery(CancellableItem):
    """A request's set, queued on the target as an item of its own: whether it runs, fails (the
    target was paused meanwhile) or is dropped (stopped meanwhile), the caller hears."""

    __slots__ = ("requests", "sender", "request", "element", "parameter", "target", "pid", "value", "depth")

    def __init__(
        self,
        requests: ElementRequests,
        sender: QActionProtocol,
        request: Request,
        element: ElementRef,
        parameter: int | str,
        target: Element,
        pid: int,
        value: Any,
        depth: int,
    ) -> None:
        self.requests, self.sender, self.request, self.element, self.parameter = requests, sender, request, element, parameter
        self.target, self.pid, self.value, self.depth = target, pid, value, depth

    def __call__(self) -> None:
        try:
            self.target._apply_user_set(self.pid, self.value, self.depth)
        except DmemuError as error:
            self.cancelled(error)

    def cancelled(self, error: Exception) -> None:
        self.requests.not_delivered(self.sender, self.request, self.element, self.parameter, error, self.depth)
