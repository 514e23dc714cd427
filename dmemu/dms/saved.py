"""A DataMiner System's state directory, read without running anything.

The DMS reads its registry here when it starts (`read_element_records`), and `SavedSystem`
reads a whole state directory the same way for showing it: every element becomes a
`SavedElement`, read like a live one (`get`, `table`) and holding what a stopped element would
hold: its saved values, checked against the current protocol, and defaults for the rest.
Reading never writes, starts no timer and opens no connection, so it is safe on the state of a
DMS that another process is running.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from ..protocol.definitions import PROTOCOLS, Protocol, protocol_path
from ..protocol.element import ElementState, ReadableElement, element_ids, element_not_found
from ..protocol.errors import ConnectionSettingError, StateFileError
from ..protocol.http import Connection
from ..protocol.storage import REGISTRY_FILE, ElementSnapshot, ElementStore, RegistryStore, element_path
from .errors import ProtocolImportError


@attrs.frozen
class ElementRecord:
    """One element as the registry names it: its protocol found, its connection read."""

    name: str
    agent_id: int
    element_id: int
    protocol: type[Protocol]
    state: ElementState
    connection: Connection = attrs.field(repr=False)


def read_element_records(registry: RegistryStore, protocols: Iterable[type[Protocol]] = ()) -> list[ElementRecord]:
    """The elements a registry names, in its order.

    A protocol is looked up in `protocols`, then among the protocols defined in this process,
    then imported from its ``module:QualifiedName``; one that cannot be found, or a bad
    connection record, raises `StateFileError` naming the registry file.
    """
    known = {protocol_path(p): p for p in protocols}
    records: list[ElementRecord] = []
    for record in registry.load():
        protocol = _find_protocol(record["protocol"], known, registry.path)
        try:
            connection = Connection.from_record(record["connection"])
        except (TypeError, ConnectionSettingError) as error:
            raise StateFileError(
                f"state file {registry.path}: bad connection for {record['name']!r}: {error}"
            ) from error
        records.append(
            ElementRecord(
                record["name"],
                record["agent_id"],
                record["element_id"],
                protocol,
                ElementState(record["state"]),
                connection,
            )
        )
    return records


def _find_protocol(path: str, known: dict[str, type[Protocol]], registry_path: Path) -> type[Protocol]:
    protocol = known.get(path) or PROTOCOLS.get(path)
    if protocol is not None:
        return protocol
    module_name, _, qualname = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    # Whatever a module raises while importing means the same to the user: this state needs
    # a protocol that is not there, so it is reported with the file rather than as a traceback.
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        raise ProtocolImportError(
            f"state file {registry_path} names protocol {path!r}, which cannot be imported "
            f"({reason}); make its module importable or pass the class in protocols=[...]",
            protocol=path,
            reason=reason,
        ) from error
    if not (isinstance(target, type) and issubclass(target, Protocol)):
        raise StateFileError(f"state file {registry_path} names protocol {path!r}, which is not a Protocol class")
    return target


def existing_registry(state_dir: Path) -> RegistryStore:
    """The registry of the DMS saved in `state_dir`; `StateFileError` when there is none."""
    path = state_dir / REGISTRY_FILE
    if not path.is_file():
        raise StateFileError(f"{state_dir} holds no DataMiner System (no {REGISTRY_FILE})")
    return RegistryStore(path)


class SavedElement(ReadableElement):
    """An element as its DMS saved it, read like a live element (`get`, `table`) but never run.

    `state` is the state it was saved in (``live`` is False: nothing runs it here, whether or
    not its DMS runs elsewhere); `problems` lists saved values the current protocol no
    longer accepts (their defaults are shown instead), as a live element would log them.
    """

    live = False

    def __init__(self, record: ElementRecord, store: ElementStore) -> None:
        self.name = record.name
        self.agent_id = record.agent_id
        self.element_id = record.element_id
        self.protocol = record.protocol
        self.connection = record.connection
        self.path = store.path
        self._state = record.state
        self._model = record.protocol.model
        self._values: dict[int, Any] = {}
        self._tables = {}
        self._reset_volatile(ElementSnapshot())
        snapshot = store.load()
        problems = [f"{store.path}: {snapshot.missing}"] if snapshot.missing else []
        problems += [problem for problem, _ in self._restore(snapshot, store.path)]
        self.problems: tuple[str, ...] = tuple(self._mask_secrets(p) for p in problems)


class SavedSystem:
    """The elements of a DMS state directory, read once, without running anything.

    ``SavedSystem("state/").element("Poller 1").get("Item Count")`` reads what the DMS saved.
    A missing or corrupt state directory, or a protocol that cannot be imported, raises
    `StateFileError` naming the file; pass protocols that are not importable by their module
    path in `protocols`, as for `DataMinerSystem`.
    """

    def __init__(self, state_dir: str | os.PathLike[str], *, protocols: Iterable[type[Protocol]] = ()) -> None:
        self.state_dir = Path(state_dir)
        records = read_element_records(existing_registry(self.state_dir), protocols)
        self.elements: list[SavedElement] = [
            SavedElement(record, ElementStore(element_path(self.state_dir, record.agent_id, record.element_id)))
            for record in sorted(records, key=lambda r: (r.agent_id, r.element_id))
        ]

    def find(self, ref: str | tuple[int, int]) -> SavedElement | None:
        """An element by name, ``"AGENT/ELEMENT"`` ids or (agent id, element id), or None; as
        for a live DMS, a name that looks like ids wins over them."""
        for element in self.elements:
            if ref == element.name:
                return element
        ids = element_ids(ref)
        return next((element for element in self.elements if element.ids == ids), None)

    def element(self, ref: str | tuple[int, int]) -> SavedElement:
        """An element as `find` names it; `ElementNotFoundError` lists those that exist."""
        element = self.find(ref)
        if element is None:
            raise element_not_found(ref, self.elements, str(self.state_dir))
        return element

    def __repr__(self) -> str:
        return f"<SavedSystem {str(self.state_dir)!r}: {len(self.elements)} elements>"


__all__ = ["ElementRecord", "SavedElement", "SavedSystem", "existing_registry", "read_element_records"]
