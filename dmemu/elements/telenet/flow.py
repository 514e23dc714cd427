"""The automatic ticketing flow: an automation script an alarm rule starts (REFERENCE §4).

For each alarm event (a new alarm on a monitored element, a change of its severity, its
clearing) one run of `ticket_flow`:

1. waits for the earlier flows of the same alarm to end, so an alarm's events are handled in
   the order they happened (an update never overtakes the create it updates);
2. takes hold of a free Ticket Client: it tries each client (starting at a different one per
   run, to spread the load), and when all are locked waits in line for one to come free (the
   shortest line; the flow at its head is woken by the release), up to
   `FlowSettings.lock_wait_limit` seconds;
3. searches the alarm's open ticket through the client (over its serial connection to the
   ticketing service);
4. reads the network element's path details from the client's Ninas Network Path Details;
5. decides: no open ticket and the alarm active -> create; an open ticket of another severity
   -> update; the alarm cleared and an open ticket -> close; otherwise nothing to send;
6. sends that through the client to the Ticket Gateway and waits for the asynchronous result;
   after a failure that may pass (no answer to the search, a NACK, a FAILED result, the Gateway
   without an answer after its retries or without a result in time) it searches and decides
   again, after `FlowSettings.retry_interval`, up to `FlowSettings.attempts` times. The new
   search shows what an earlier attempt finished upstream; one still being processed there it
   cannot show, so each create, update or close of the flow carries a request key of its own
   (the alarm id, the operation and the flow's GUID: one flow per alarm event), sent as the
   service's RequestId. Sent again after an answer that never came, it gets the transaction the
   service already has back, not a second ticket; only after a FAILED transaction (which did
   nothing) is a new key used;
7. puts the ticket id on the alarm (property ``Ticket ID``, with ``Ticket Status``), and
8. releases the client.

A flow that fails anywhere releases its client (the release says why, in the client's Client
Processing Data), sets the alarm property ``Ticket Error``, and ends with `TicketFlowError`:
the script run's error. Every wait has a limit, so no flow waits forever.

The network element of an alarm is its ``Network Element`` property when set, else the row key
of a table alarm, else the element's name; the ticket type is its ``Ticket Type`` property
(``MO`` or ``PLM``) when set, else `FlowSettings.ticket_type`.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
import weakref
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Iterable
from operator import attrgetter
from typing import Any

import attrs

from dmemu.dms import (
    Alarm,
    AlarmEvent,
    AlarmEventKind,
    Automation,
    DataMinerSystem,
    ScriptContext,
    ScriptRun,
    ScriptState,
    Severity,
    Signal,
    WaitTimeoutError,
)
from dmemu.protocol import DmemuError, Element, ElementState, LogType

from .ticket_client import (
    CLIENT_COMMAND,
    COMMAND_REPLY,
    LOCK_REPLY,
    LOCK_REQUEST,
    LOCKED,
    PROTOCOL_NAME,
    TOPOLOGY_TABLE,
    UNLOCKED,
    command_message,
    lock_message,
)
from .ticket_gateway import OUTCOME_UNKNOWN

SCRIPT_NAME = "Telenet Ticket Flow"
TICKET_ID_PROPERTY = "Ticket ID"
TICKET_STATUS_PROPERTY = "Ticket Status"
TICKET_ERROR_PROPERTY = "Ticket Error"
NETWORK_ELEMENT_PROPERTY = "Network Element"
TICKET_TYPE_PROPERTY = "Ticket Type"
FLOW_EVENT_KINDS = (AlarmEventKind.OPENED, AlarmEventKind.CHANGED, AlarmEventKind.CLEARED)
"""The alarm events a flow handles (its alarm rule's kinds)."""


def _unlocked(lock_status: Any) -> bool:
    return lock_status == UNLOCKED


class _WaitingLines:
    """The flows of one DMS waiting for each of its clients, in order (see `_Flow._take_client`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_client: weakref.WeakKeyDictionary[Element, list[_Flow]] = weakref.WeakKeyDictionary()


_LINES_BY_DMS: weakref.WeakKeyDictionary[DataMinerSystem, _WaitingLines] = weakref.WeakKeyDictionary()
_LINES_BY_DMS_LOCK = threading.Lock()


def _waiting_lines(dms: DataMinerSystem) -> _WaitingLines:
    with _LINES_BY_DMS_LOCK:
        lines = _LINES_BY_DMS.get(dms)
        if lines is None:
            lines = _LINES_BY_DMS[dms] = _WaitingLines()
        return lines


class _RunsByAlarm:
    """The running flows of one DMS by alarm id, each run filed once, when a flow first looks
    after it started: a flow then finds its alarm's earlier flows among those of its alarm, not
    among every run (a burst of a thousand alarms is a thousand flows running at once)."""

    def __init__(self) -> None:
        self.filed_up_to = 0  # the highest run id filed
        self.filed = 0  # runs filed and not yet found done
        self.by_alarm: dict[int, list[ScriptRun]] = {}

    def earlier(self, automation: Automation, run: ScriptRun, alarm_id: int) -> list[ScriptRun]:
        """The running flows of `alarm_id` started before `run` (the caller holds `_RUNS_LOCK`)."""
        if run.id > self.filed_up_to:  # else every run before it was filed, or was done by then: ids count up
            self._file_new_runs(automation, run.script)
        return [other for other in self.by_alarm.get(alarm_id, ()) if other.id < run.id and not other.done]

    def _file_new_runs(self, automation: Automation, script: str) -> None:
        running = automation.runs(script=script, state=ScriptState.RUNNING)  # in id order
        for other in running[bisect_right(running, self.filed_up_to, key=_run_id) :]:
            if isinstance(other.input, AlarmEvent):
                self.by_alarm.setdefault(other.input.alarm.id, []).append(other)
                self.filed += 1
        if running:
            self.filed_up_to = max(self.filed_up_to, running[-1].id)
        if self.filed > 2 * len(running) + 100:  # many filed runs ended: forget them all at once
            self.by_alarm = {key: alive for key, runs in self.by_alarm.items() if (alive := [r for r in runs if not r.done])}
            self.filed = sum(map(len, self.by_alarm.values()))


_RUNS_BY_ALARM: weakref.WeakKeyDictionary[Automation, _RunsByAlarm] = weakref.WeakKeyDictionary()
_RUNS_LOCK = threading.Lock()
_run_id = attrgetter("id")


class TicketFlowError(DmemuError):
    """A ticketing flow could not do its work; the message says where and why."""


class _Retryable(TicketFlowError):
    """A failure that may pass and left nothing behind upstream, something the next search
    shows, or something the same request key finds again: a search without an answer, a broken
    connection, a NACK; a create, update or close the service refused (NACK), whose processing
    failed (FAILED), that the Gateway could not get an answer or a result to. The flow searches
    and decides again. A lost lock is never retried."""


# The Gateway's error replies (contract) after which searching and deciding again is safe.
_GATEWAY_RETRYABLE = ("NACK:", "FAILED:", *OUTCOME_UNKNOWN)


def _client_names(names: Any) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ValueError(f"FlowSettings.clients is a list of Ticket Client element names (or None: all of them), not {names!r}")
    chosen = tuple(names)
    if not chosen:
        raise ValueError("FlowSettings.clients is empty: a flow needs a Ticket Client (None: all of them)")
    for name in chosen:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"FlowSettings.clients holds {name!r}, not a Ticket Client element name")
    return chosen


def _text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"FlowSettings.{attribute.name} is a non-empty text, not {value!r}")


def _seconds(*, above: float | None = None, least: float | None = None) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """A validator: a finite number of seconds above `above` (or from `least`)."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        number = type(value) in (int, float) and math.isfinite(value)
        if not number or (above is not None and value <= above) or (least is not None and value < least):
            bound = f"above {above:g}" if above is not None else f"from {least:g}"
            raise ValueError(f"FlowSettings.{attribute.name} is a number of seconds {bound}, not {value!r}")

    return check


def _attempts(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"FlowSettings.{attribute.name} is a whole number from 1 (the first attempt counts), not {value!r}")


@attrs.frozen
class FlowSettings:
    """How a flow behaves. `clients`: the Ticket Client element names it may use (None: every
    Ticket Client element of the DMS, by name order). Times are seconds on the DMS clock. A
    value a flow cannot work with raises `ValueError` naming the field."""

    clients: tuple[str, ...] | None = attrs.field(default=None, converter=_client_names)
    ticket_type: str = attrs.field(default="MO", validator=_text)
    lock_wait_limit: float = attrs.field(default=600.0, validator=_seconds(least=0))  # all clients locked: how long to wait for one
    lock_poll_interval: float = attrs.field(default=30.0, validator=_seconds(above=0))  # while waiting for a client, how often the flow at the head of a line looks at every client again
    reply_timeout: float = attrs.field(default=60.0, validator=_seconds(above=0))  # a lock request's or a search's answer
    attempts: int = attrs.field(default=4, validator=_attempts)  # search, decide and send, again after a failure that may pass (see `_Retryable`)
    retry_interval: float = attrs.field(default=10.0, validator=_seconds(least=0))
    gateway_timeout: float = attrs.field(default=3900.0, validator=_seconds(above=0))  # the Gateway's final answer (its Result Timeout is an hour, and it retries)


def ticket_flow_script(settings: FlowSettings | None = None) -> Callable[[ScriptContext, AlarmEvent], Awaitable[dict[str, Any]]]:
    """The flow as an automation script with these settings (register it, then
    ``dms.automation.on_alarm(AlarmRule(..., kinds=FLOW_EVENT_KINDS), name)``)."""
    chosen = settings or FlowSettings()

    async def telenet_ticket_flow(ctx: ScriptContext, event: AlarmEvent) -> dict[str, Any]:
        return await _Flow(ctx, event, chosen).run()

    return telenet_ticket_flow


ticket_flow = ticket_flow_script()
"""The flow with the default `FlowSettings`."""


def network_element_of(alarm: Alarm) -> str:
    """The network element a ticket for `alarm` is about: its Network Element property when set,
    else the alarm's row key (a table row names the device), else its element's name."""
    return alarm.properties.get(NETWORK_ELEMENT_PROPERTY) or alarm.row_key or alarm.element_name


def _reply_of(text: Any, command_id: str) -> dict[str, Any] | None:
    """The final reply to `command_id` in a Client Command Reply's text, else None."""
    if not isinstance(text, str) or command_id not in text:
        return None
    try:
        reply = json.loads(text)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) and reply.get("id") == command_id and reply.get("final") else None


class _Flow:
    """One run of the flow: its alarm event, the client it holds and the GUID of its lock."""

    def __init__(self, ctx: ScriptContext, event: AlarmEvent, settings: FlowSettings) -> None:
        if not isinstance(event, AlarmEvent):
            raise TicketFlowError(f"a ticketing flow is started by an alarm event, not {event!r}")
        self.ctx = ctx
        self.event = event
        self.alarm = event.alarm
        self.settings = settings
        self.guid = uuid.uuid4().hex
        self.client: str | None = None
        self.commands = 0
        self.failed_transactions: dict[str, int] = {}  # per operation: its request keys spent on FAILED transactions
        self.network_element = network_element_of(self.alarm)
        self.ticket_type = self.alarm.properties.get(TICKET_TYPE_PROPERTY) or settings.ticket_type
        # All clients taken, a flow waits in the line of one of them (the shortest). Only the flow
        # at its head listens to that client's Lock Status (and looks at every client now and
        # then): a release wakes one flow, not all. The others wait for their turn (`_turn`),
        # which the line gives the next flow whenever its head leaves it.
        self._lines = _waiting_lines(ctx.dms)
        self._line_client: Element | None = None
        self._line: list[_Flow] | None = None
        self._turn: Signal | None = None

    async def run(self) -> dict[str, Any]:
        ctx, alarm = self.ctx, self.alarm
        what = f"alarm {alarm.id} {self.event.kind.value} ({alarm.parameter_name} on {alarm.element_name}, {self.network_element})"
        try:
            await self._after_earlier_flows()
            await self._take_client()
            ctx.log(f"flow {self.guid} for {what} holds {self.client!r}")
            outcome = await self._handle()
        except Exception as error:
            message = f"{type(error).__name__}: {error}" if not isinstance(error, TicketFlowError) else str(error)
            ctx.log(f"flow {self.guid} for {what} failed: {message}", LogType.ERROR)
            self._set_property(TICKET_ERROR_PROPERTY, message)
            self._release(f"failed: {message}")
            if isinstance(error, TicketFlowError):
                raise
            raise TicketFlowError(f"{what}: {message}") from error
        self._release(f"done: {outcome['action']} {outcome.get('ticket_id') or ''}".rstrip())
        ctx.log(f"flow {self.guid} for {what}: {outcome['action']} {outcome.get('ticket_id') or ''}".rstrip())
        return outcome

    # -- order and lock ---------------------------------------------------------------------

    async def _after_earlier_flows(self) -> None:
        """Runs are numbered in the order their alarm events came: wait for this alarm's earlier ones."""
        automation = self.ctx.dms.automation
        with _RUNS_LOCK:
            runs = _RUNS_BY_ALARM.get(automation)
            if runs is None:
                runs = _RUNS_BY_ALARM[automation] = _RunsByAlarm()
            earlier = runs.earlier(automation, self.ctx.run, self.alarm.id)
        for other in earlier:
            await self.ctx.wait_run(other)

    def _client_names(self) -> list[str]:
        if self.settings.clients is not None:
            return list(self.settings.clients)
        return sorted(element.name for element in self.ctx.dms.elements if element.protocol.name == PROTOCOL_NAME)

    async def _take_client(self) -> None:
        try:
            await self._wait_for_client()
        finally:
            self._leave_line()

    async def _wait_for_client(self) -> None:
        ctx, settings = self.ctx, self.settings
        names = self._client_names()
        if not names:
            raise TicketFlowError("no Ticket Client element in the DataMiner System")
        deadline = ctx.now() + settings.lock_wait_limit
        first = ctx.run.id % len(names)  # runs start at different clients: fewer collisions
        rotated = names[first:] + names[:first]
        scan_due = ctx.now()
        while True:
            now = ctx.now()
            watched = self._line_client
            if watched is None or now >= scan_due:  # every client, now and then
                tried, scan_due = rotated, now + settings.lock_poll_interval
            else:  # woken at the head of the line of a client just freed: that one
                tried = [watched.name]
            for name in tried:
                if self._looks_free(name) and await self._lock(name):
                    self.client = name
                    return
            remaining = deadline - ctx.now()
            if remaining <= 0:
                raise TicketFlowError(f"no Ticket Client came free within {settings.lock_wait_limit:g} s (clients: {', '.join(names)})")
            if watched is None or not self._held(watched.name):
                locked = [name for name in rotated if self._held(name)]
                if not locked:  # none usable (stopped, say): look again later
                    self._leave_line()
                    await ctx.sleep(min(settings.lock_poll_interval, remaining))
                    continue
                watched = self._join_shortest_line(locked)
            turn = self._wait_for_turn()
            try:
                if turn is None:  # at the head: the client's release (or a look at every client when due)
                    await ctx.wait_for(watched, "Lock Status", _unlocked, timeout=max(0.0, min(scan_due - ctx.now(), remaining)))
                else:  # behind it: the head's leaving, or the wait's limit
                    await ctx.wait_signal(turn, timeout=remaining)
            except (WaitTimeoutError, DmemuError):
                scan_due = ctx.now()

    def _wait_for_turn(self) -> Signal | None:
        """None at the head of the line, else a fresh turn the line gives this flow when it gets there."""
        with self._lines.lock:
            line = self._line
            self._turn = None if line and line[0] is self else Signal()
            return self._turn

    def _join_shortest_line(self, names: list[str]) -> Element:
        clients = [self.ctx.dms.element(name) for name in names]
        next_head = None
        with self._lines.lock:
            lines = [self._lines.by_client.setdefault(client, []) for client in clients]
            shortest = min(range(len(clients)), key=lambda index: len(lines[index]))
            if self._line is not lines[shortest]:
                next_head = self._leave_line_locked()
                lines[shortest].append(self)
                self._line_client, self._line = clients[shortest], lines[shortest]
        if next_head is not None:
            next_head.set()
        return clients[shortest]

    def _leave_line(self) -> None:
        with self._lines.lock:
            next_head = self._leave_line_locked()
        if next_head is not None:  # its turn, outside the lock: the wake may run its flow on
            next_head.set()

    def _leave_line_locked(self) -> Signal | None:
        """Leave the line; answers the turn of the flow now at its head, when this one was there."""
        line, next_head = self._line, None
        if line and self in line:
            was_head = line[0] is self
            line.remove(self)
            if was_head and line:
                next_head = line[0]._turn
        self._line_client, self._line, self._turn = None, None, None
        return next_head

    def _held(self, name: str) -> bool:
        element = self.ctx.dms.find(name)
        return element is not None and element.state is ElementState.ACTIVE and element.get("Lock Status") == LOCKED

    def _looks_free(self, name: str) -> bool:
        """Worth a lock request: active, and unlocked or its lock past expiry."""
        element = self.ctx.dms.find(name)
        if element is None or element.state is not ElementState.ACTIVE:
            return False
        if element.get("Lock Status") != LOCKED:
            return True
        renewed = element.get("Lock Renewed") or element.get("Lock Time") or 0
        return self.ctx.now() - renewed >= element.get("Lock Expiry Time")

    async def _lock(self, name: str) -> bool:
        ctx, guid = self.ctx, self.guid
        element = ctx.dms.find(name)
        if element is None:
            return False

        def answered(text: Any) -> bool:
            # The lock's state is the truth: another flow's reply may have replaced this one's
            # (Lock Reply holds one value), so a lock held by anyone ends the wait too.
            if element.get("Lock Status") == LOCKED and element.get("LockGuidId"):
                return True
            return isinstance(text, str) and guid in text
        try:
            ctx.set_parameter(name, LOCK_REQUEST, lock_message("lock", guid))
            text = await ctx.wait_for(name, LOCK_REPLY, answered, timeout=self.settings.reply_timeout)
        except WaitTimeoutError:
            self._release_on(name, "no answer to the lock request in time")  # should it come late
            return False
        except DmemuError as error:  # stopped or deleted meanwhile: try another
            ctx.log(f"flow {guid}: {name!r} cannot be locked: {error}", LogType.ERROR)
            return False
        if element.get("Lock Status") == LOCKED and element.get("LockGuidId") == guid:
            return True
        if not (isinstance(text, str) and guid in text):  # held by another before this request's turn came, maybe
            self._release_on(name, "the client was taken by another flow")  # should this request be granted later
        return False

    def _release(self, note: str) -> None:
        if self.client is not None:
            self._release_on(self.client, note)
            self.client = None

    def _release_on(self, name: str, note: str) -> None:
        try:
            self.ctx.set_parameter(name, LOCK_REQUEST, lock_message("release", self.guid, note))
        except DmemuError as error:
            self.ctx.log(f"flow {self.guid}: the release of {name!r} failed: {error}", LogType.ERROR)

    # -- commands through the client ---------------------------------------------------------

    async def _command(self, command: str, timeout: float, **fields: Any) -> dict[str, Any]:
        """Send a command under this flow's lock and answer its final reply (failed or not)."""
        assert self.client is not None
        self.commands += 1
        command_id = f"{self.guid}-{self.commands}"
        self.ctx.set_parameter(self.client, CLIENT_COMMAND, command_message(self.guid, command_id, command, **fields))
        read: list[Any] = [None, None]  # the last reply text the wait accepted and what it says: read once

        def final(text: Any) -> bool:
            reply = _reply_of(text, command_id)
            if reply is not None:
                read[:] = text, reply
            return reply is not None

        try:
            text = await self.ctx.wait_for(self.client, COMMAND_REPLY, final, timeout=timeout)
        except WaitTimeoutError:
            raise TicketFlowError(f"{self.client!r} gave no answer to {command} {command_id} within {timeout:g} s") from None
        reply = read[1] if read[0] is text else _reply_of(text, command_id)
        assert reply is not None
        return reply

    async def _search(self) -> list[dict[str, Any]]:
        """The alarm's open tickets upstream."""
        reply = await self._command(
            "search", self.settings.reply_timeout,
            ticket_type=self.ticket_type, network_element=self.network_element, alarm_id=str(self.alarm.id), status="Open",
        )  # fmt: skip
        if reply.get("ok"):
            return list(reply.get("tickets") or [])
        failure = _Retryable if reply.get("retryable") else TicketFlowError
        raise failure(f"search through {self.client!r} failed: {reply.get('error')}")

    async def _handle(self) -> dict[str, Any]:
        """Search, decide and send, again after a failure that changed nothing upstream (or
        whose outcome the next search shows), up to `FlowSettings.attempts` times."""
        settings = self.settings
        for attempt in range(1, settings.attempts + 1):
            try:
                return await self._search_decide_send()
            except _Retryable as failure:
                if attempt == settings.attempts:
                    raise TicketFlowError(f"{failure} (attempt {attempt} of {settings.attempts})") from None
                self.ctx.log(f"flow {self.guid}: attempt {attempt} failed, again in {settings.retry_interval:g} s: {failure}")
                await self.ctx.sleep(settings.retry_interval)
        raise AssertionError("unreachable")

    async def _search_decide_send(self) -> dict[str, Any]:
        alarm = self.alarm
        found = await self._search()
        open_tickets = [t for t in found if t.get("status") == "Open" and t.get("alarm_id") == str(alarm.id)]
        ticket = open_tickets[0] if open_tickets else None
        severity = alarm.severity if alarm.active else alarm.worst_severity
        outcome: dict[str, Any] = {"client": self.client, "alarm": alarm.id, "network_element": self.network_element}
        if not alarm.active:
            if ticket is None:
                return {**outcome, "action": "nothing to close"}
            fields = {"ticket_id": ticket["ticket_id"], "resolution": f"alarm {alarm.id} cleared"}
            ticket_id = await self._send("close", fields)
            self._set_properties({TICKET_ID_PROPERTY: ticket_id, TICKET_STATUS_PROPERTY: "Closed"})
            return {**outcome, "action": "closed", "ticket_id": ticket_id}
        if ticket is None:
            fields = {
                "alarm_id": str(alarm.id), "network_element": self.network_element, "severity": _severity(severity),
                "path_details": self._path_details(), "description": _description(alarm),
            }  # fmt: skip
            ticket_id = await self._send("create", fields)
            self._set_properties({TICKET_ID_PROPERTY: ticket_id, TICKET_STATUS_PROPERTY: "Open"})
            return {**outcome, "action": "created", "ticket_id": ticket_id}
        if ticket.get("severity") != _severity(severity):
            fields = {"ticket_id": ticket["ticket_id"], "severity": _severity(severity), "description": _description(alarm)}
            ticket_id = await self._send("update", fields)
            self._set_properties({TICKET_ID_PROPERTY: ticket_id, TICKET_STATUS_PROPERTY: "Open"})
            return {**outcome, "action": "updated", "ticket_id": ticket_id}
        self._set_properties({TICKET_ID_PROPERTY: ticket["ticket_id"], TICKET_STATUS_PROPERTY: "Open"})
        return {**outcome, "action": "up to date", "ticket_id": ticket["ticket_id"]}

    def _request_key(self, operation: str) -> str:
        """The RequestId of this flow's `operation`: the same on every attempt, so the service
        answers a repeat with the transaction it has (see the module's text), until one FAILED."""
        spent = self.failed_transactions.get(operation, 0)
        return f"alarm-{self.alarm.id}-{operation}-{self.guid}" + (f"-{spent + 1}" if spent else "")

    async def _send(self, operation: str, fields: dict[str, Any]) -> str:
        """A create, update or close through the Gateway, which retries it itself; keyed, so
        that asking again after an answer never heard finds the same transaction upstream."""
        reply = await self._command(
            "ticket", self.settings.gateway_timeout,
            operation=operation, ticket_type=self.ticket_type, fields=fields, request_key=self._request_key(operation),
        )  # fmt: skip
        if not reply.get("ok"):
            error = str(reply.get("error"))
            if error.startswith("FAILED:") and not error.startswith(OUTCOME_UNKNOWN):  # done upstream, and nothing made
                self.failed_transactions[operation] = self.failed_transactions.get(operation, 0) + 1
            failure = _Retryable if error.startswith(_GATEWAY_RETRYABLE) else TicketFlowError
            raise failure(f"{operation} through {self.client!r} failed: {error}")
        ticket_id = reply.get("ticket_id") or fields.get("ticket_id")
        if not ticket_id:
            raise TicketFlowError(f"the Gateway's answer to the {operation} names no ticket: {reply}")
        return str(ticket_id)

    def _path_details(self) -> str:
        assert self.client is not None
        topology = self.ctx.element(self.client).table(TOPOLOGY_TABLE)
        if self.network_element not in topology:
            self.ctx.log(f"flow {self.guid}: {self.client!r} has no path details for {self.network_element!r}", LogType.ERROR)
            return ""
        return topology.cell(self.network_element, "Path Details") or ""

    # -- alarm properties --------------------------------------------------------------------

    def _set_properties(self, values: dict[str, str]) -> None:
        now = None
        for key, value in values.items():
            now = self._set_property(key, value)
        if now is not None and now.properties.get(TICKET_ERROR_PROPERTY):
            self._set_property(TICKET_ERROR_PROPERTY, "")  # an earlier flow's error is over

    def _set_property(self, key: str, value: str) -> Alarm | None:
        """Set it; answers the alarm as it is now, None when it left the history meanwhile."""
        try:
            return self.ctx.dms.alarms.set_property(self.alarm.id, key, value)
        except DmemuError as error:  # the alarm left the history meanwhile
            self.ctx.log(f"flow {self.guid}: property {key!r} not set on alarm {self.alarm.id}: {error}", LogType.ERROR)
            return None


def _severity(severity: Severity) -> str:
    return severity.label if severity > Severity.NORMAL else Severity.WARNING.label


def _description(alarm: Alarm) -> str:
    where = f"{alarm.parameter_name} {alarm.row_key}" if alarm.row_key else alarm.parameter_name
    return f"{where} on {alarm.element_name}: {_severity(alarm.severity if alarm.active else alarm.worst_severity)} (value {alarm.value})"


__all__ = [
    "FLOW_EVENT_KINDS",
    "SCRIPT_NAME",
    "TICKET_ERROR_PROPERTY",
    "TICKET_ID_PROPERTY",
    "TICKET_STATUS_PROPERTY",
    "FlowSettings",
    "TicketFlowError",
    "network_element_of",
    "ticket_flow",
    "ticket_flow_script",
]
