"""Requests and replies between elements: JSON envelopes set on string parameters.

An element asks another one something the way the Telenet Ticket Gateway is asked: it sets a
parameter of the other element to a request that says where the answer goes (agent id,
element id, parameter id), and the answer is set on that parameter of the caller. The QAction
facade does the sending (`QActionProtocol.send_request`, `reply`); this module is the envelope:

    request: {"type": "request", "id": "...", "reply_to": {"agent": 1, "element": 2, "parameter": 20}, "body": ...}
    reply:   {"type": "reply", "id": "<the request's id>", "body": ..., "error": null | "what went wrong"}

Bodies are any JSON value. Ids are random (uuid4), so a reply left on a saved parameter by an
earlier run of the DMS can never be taken for the answer to a new request.
"""

from __future__ import annotations

import json
import os
from typing import Any

import attrs

from .errors import InvalidValueError, MessageFormatError
from .json_text import json_encoder


@attrs.frozen
class ReplyAddress:
    """Where an answer goes: a parameter of an element, by ids, so it can be on any agent."""

    agent_id: int
    element_id: int
    parameter: int

    @property
    def element(self) -> tuple[int, int]:
        return (self.agent_id, self.element_id)


@attrs.frozen
class Request:
    """A request from one element to another; `reply_to` says where the answer is set."""

    id: str
    reply_to: ReplyAddress
    body: Any = None
    _sent_text: str | None = attrs.field(default=None, init=False, repr=False, eq=False)
    """`to_json` as the request was sent (`_text_to_send`): encoded once per send, not twice."""

    @classmethod
    def new(cls, reply_to: ReplyAddress, body: Any) -> Request:
        return cls(_random_uuid4_hex(), reply_to, body)

    def _text_to_send(self) -> str:
        """`to_json`, kept after the first call: the sender checks the body by encoding it, and
        the routing then sets that same text (the body does not change in between)."""
        text = self._sent_text
        if text is None:
            text = self.to_json()
            object.__setattr__(self, "_sent_text", text)  # a cache: the request's fields stay as they are
        return text

    def to_json(self) -> str:
        address = self.reply_to
        return _dumps(
            {
                "type": "request",
                "id": self.id,
                "reply_to": {"agent": address.agent_id, "element": address.element_id, "parameter": address.parameter},
                "body": self.body,
            },
            f"request {self.id}",
        )

    @classmethod
    def from_json(cls, text: Any) -> Request:
        """The request in a parameter's text; `MessageFormatError` says what is wrong with it."""
        document = _loads(text, "request")
        address = document.get("reply_to")
        if not isinstance(address, dict) or not all(type(address.get(part)) is int for part in ("agent", "element", "parameter")):
            raise MessageFormatError(f"request {document['id']!r}: reply_to must hold integer agent, element and parameter ids, not {address!r}")
        return cls(document["id"], ReplyAddress(address["agent"], address["element"], address["parameter"]), document.get("body"))


@attrs.frozen
class Reply:
    """The answer to request `id`: a `body`, or an `error` when it could not be answered or delivered."""

    id: str
    body: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> str:
        return _dumps({"type": "reply", "id": self.id, "body": self.body, "error": self.error}, f"reply to request {self.id}")

    @classmethod
    def from_json(cls, text: Any) -> Reply:
        """The reply in a parameter's text; `MessageFormatError` says what is wrong with it."""
        document = _loads(text, "reply")
        error = document.get("error")
        if error is not None and not isinstance(error, str):
            raise MessageFormatError(f"reply to request {document['id']!r}: error must be text or null, not {error!r}")
        return cls(document["id"], document.get("body"), error)


def _random_uuid4_hex() -> str:
    """`uuid.uuid4().hex`, made here without the `UUID` object (one per request sent)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return raw.hex()


_encode = json_encoder(allow_nan=False)  # json.dumps(..., allow_nan=False)


def _dumps(document: dict[str, Any], what: str) -> str:
    try:
        return _encode(document)
    except (TypeError, ValueError) as error:
        raise InvalidValueError(f"{what}: the body must be a JSON value (text, number, list, object, ...): {error}") from error


def _loads(text: Any, kind: str) -> dict[str, Any]:
    """The envelope of `kind` in `text`, its type and id checked."""
    if not isinstance(text, str):
        raise MessageFormatError(f"a {kind} is JSON text, not {type(text).__name__} {text!r}")
    try:
        document = json.loads(text)
    except ValueError as error:
        raise MessageFormatError(f"not a {kind}: {text[:80]!r} is not JSON ({error})") from error
    if not isinstance(document, dict) or document.get("type") != kind:
        raise MessageFormatError(f"not a {kind}: {text[:80]!r} is not an object with \"type\": \"{kind}\"")
    if not isinstance(document.get("id"), str) or not document["id"]:
        raise MessageFormatError(f"{kind} without an id: {text[:80]!r}")
    return document
