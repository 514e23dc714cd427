"""Telenet Topology Database: the topology table built from provisioning CSV files.

What the connector's help page says, and where it lives here:

* **Configuration**: *Provisioning Folder* (where the provisioning system drops its files),
  *File Pattern* (which files of that folder are read, ``*.csv`` by default; matched against the
  file names in the folder only, never its sub-folders) and *Update Interval* (hourly by default).
* **Building the table** (`build_topology`): at start-up, every *Update Interval* and on
  *Execute Now*, every matching file is read and the *Topology* table becomes what they say: one
  row per network element address with its Ninas network path details, and the file and line the
  row came from (the Ticket Client reads this table by name when it starts).

The CSV format (UTF-8, a byte order mark allowed)::

    network_element_address,ninas_network_path_details
    10.0.0.1,"BRU-01/slot 3, port 2"

* The first line is a header naming the columns (any order, any case, extra columns ignored):
  ``network_element_address`` and ``ninas_network_path_details`` are required.
* One record per line: a field may be quoted (to hold a comma or a quote, doubled), not span
  lines. Fields are trimmed; blank lines are skipped.
* Files are read in sorted file-name order, each top to bottom: when an address is given more
  than once, the last one read wins (a later file overrides an earlier one), and Source File and
  Line name the line that won.

What goes wrong, and what happens then:

* A bad line (not as many fields as the header, an empty address, not UTF-8, a quote left open)
  is skipped and counted in *Bad Lines*; the last one is named in *Last Error*, and the first
  `MAX_REJECTED_LINES_SHOWN` of a run are logged with their file and line and listed in the
  *Rejected Lines* table (the others in one log line). The rest of its file still loads.
* A run that cannot trust what it read keeps the last good table, and *Last Run Status* says
  why: the folder is not set, missing or unreadable; a matching file cannot be read or its
  header lacks a required column or is not a CSV record (its rows would silently vanish); or
  no good row was read at all (an empty drop is far likelier a
  broken export than an empty network).

The table and the run figures are saved, so a restart shows them at once.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import attrs

from dmemu.protocol import (
    Button,
    Column,
    DateTime,
    LogType,
    Number,
    Page,
    Parameter,
    Protocol,
    QAction,
    QActionProtocol,
    String,
    Table,
    Timer,
)

from .csv_files import csv_lines, field_count_problem
from .texts import cell_text, counted

ADDRESS_FIELD = "network_element_address"
PATH_DETAILS_FIELD = "ninas_network_path_details"
REQUIRED_FIELDS = (ADDRESS_FIELD, PATH_DETAILS_FIELD)
HOUR = 3600
MAX_REJECTED_LINES_SHOWN = 100  # rows of the Rejected Lines table per run; the count has them all
_SHOWN_TEXT_LIMIT = 120  # characters of a bad line kept in the Rejected Lines table


# --------------------------------------------------------------------------------------------
# Reading the provisioning files


@attrs.frozen
class TopologyEntry:
    """One good line: a row of the Topology table."""

    address: str
    path_details: str
    source_file: str
    line: int

    def row(self) -> list[object]:
        return [self.address, self.path_details, self.source_file, self.line]


@attrs.frozen
class BadLine:
    """A line that was skipped, and why."""

    source_file: str
    line: int
    reason: str
    text: str = ""

    def describe(self) -> str:
        return f"{self.source_file} line {self.line}: {self.reason}"


class FolderError(Exception):
    """The run cannot go on: the folder or one of its files cannot be read (the message says which)."""


def matching_files(folder: Path, pattern: str) -> list[Path]:
    """The regular files directly in `folder` whose names match `pattern`, in sorted name order.

    Raises `FolderError` when the folder is missing or cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries if entry.is_file() and fnmatch.fnmatchcase(entry.name, pattern)]
    except FileNotFoundError:
        raise FolderError(f"folder {str(folder)!r} does not exist") from None
    except NotADirectoryError:
        raise FolderError(f"{str(folder)!r} is not a folder") from None
    except OSError as error:
        raise FolderError(f"folder {str(folder)!r} cannot be read: {error.strerror or error}") from None
    return [folder / name for name in sorted(names)]


def read_provisioning_file(path: Path) -> tuple[list[TopologyEntry], list[BadLine]]:
    """The good entries and the bad lines of one file, both in line order.

    Raises `FolderError` when the file cannot be read at all or its header cannot be used."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise FolderError(f"file {path.name!r} cannot be read: {error.strerror or error}") from None
    name = path.name
    entries: list[TopologyEntry] = []
    bad: list[BadLine] = []
    header: list[str] | None = None
    positions: tuple[int, int] = (0, 0)
    for line in csv_lines(data):
        if header is None:
            problem = line.problem
            if not problem:
                header = [field.lower() for field in line.fields]
                missing = [field for field in REQUIRED_FIELDS if field not in header]
                problem = f"the header lacks {', '.join(missing)}" if missing else ""
            if problem:  # the file cannot be read as provisioning: its rows would silently vanish
                raise FolderError(f"file {name!r} line {line.number}: {problem}")
            positions = (header.index(ADDRESS_FIELD), header.index(PATH_DETAILS_FIELD))
            continue
        problem = line.problem or field_count_problem(line, len(header))
        if not problem and not line.fields[positions[0]]:
            problem = "empty network element address"
        if problem:
            bad.append(BadLine(name, line.number, problem, cell_text(line.text, _SHOWN_TEXT_LIMIT)))
            continue
        entries.append(TopologyEntry(line.fields[positions[0]], line.fields[positions[1]], name, line.number))
    if header is None:
        bad.append(BadLine(name, 1, "empty file: no header"))
    return entries, bad


@attrs.define
class TopologyRead:
    """What one run read from the folder."""

    files: list[str] = attrs.field(factory=list)
    entries: dict[str, TopologyEntry] = attrs.field(factory=dict)  # by address, the last read winning
    bad_lines: list[BadLine] = attrs.field(factory=list)
    overridden: int = 0  # entries replaced by a later one for the same address


def read_topology(folder: Path, pattern: str) -> TopologyRead:
    """Every matching file of `folder`, in sorted name order. Raises `FolderError` when the folder
    or one of its matching files cannot be read."""
    result = TopologyRead()
    for path in matching_files(folder, pattern):
        entries, bad = read_provisioning_file(path)
        result.files.append(path.name)
        result.bad_lines.extend(bad)
        for entry in entries:
            if entry.address in result.entries:
                result.overridden += 1
                del result.entries[entry.address]  # the table lists addresses in the order they were last read
            result.entries[entry.address] = entry
    return result


# --------------------------------------------------------------------------------------------
# QActions


def _keep_last_table(protocol: QActionProtocol, why: str, last_error: str = "") -> None:
    """A run that failed: the table stays, and the status says why (Last Error too, unless a
    bad line is the better clue)."""
    rows = protocol.row_count("Topology")
    last_good = protocol.get_parameter("Last Good Run Time")
    since = f" from {DateTime().display(last_good)}" if last_good is not None else ""
    status = f"Failed: {why}; the last good table ({counted(rows, 'row')}{since}) is kept"
    protocol.set_parameters({"Last Run Status": status, "Last Error": last_error or why})
    protocol.log(f"topology not updated: {why}; the last good table ({counted(rows, 'row')}) is kept", LogType.ERROR)


def build_topology(protocol: QActionProtocol) -> None:
    """QAction 1: at start-up, on Execute Now, and when the check timer finds an update due."""
    started = protocol.now()
    interval = protocol.get_parameter("Update Interval")
    protocol.set_parameters({"Last Run Time": started, "Next Update": started + interval})
    folder_text = (protocol.get_parameter("Provisioning Folder") or "").strip()
    pattern = protocol.get_parameter("File Pattern") or "*.csv"
    if not folder_text:
        protocol.set_parameters({"Files Read": 0, "Bad Lines": 0})
        protocol.clear_table("Rejected Lines")
        _keep_last_table(protocol, "no Provisioning Folder is set")
        return
    try:
        read = read_topology(Path(folder_text), pattern)
    except FolderError as error:
        protocol.set_parameters({"Files Read": 0, "Bad Lines": 0})
        protocol.clear_table("Rejected Lines")
        _keep_last_table(protocol, str(error))
        return
    shown = read.bad_lines[:MAX_REJECTED_LINES_SHOWN]
    for bad in shown:
        protocol.log(f"bad provisioning line: {bad.describe()}", LogType.ERROR)
    if len(read.bad_lines) > len(shown):  # a broken export must not flood the log
        protocol.log(f"{counted(len(read.bad_lines) - len(shown), 'more bad line')} not logged one by one", LogType.ERROR)
    protocol.fill_array("Rejected Lines", [[f"{b.source_file}:{b.line}", b.source_file, b.line, b.reason, b.text] for b in shown])
    last_bad_line = read.bad_lines[-1].describe() if read.bad_lines else ""
    protocol.set_parameters({"Files Read": len(read.files), "Bad Lines": len(read.bad_lines), "Last Error": last_bad_line})
    if not read.entries:
        if not read.files:
            why = f"no file in {folder_text!r} matches {pattern!r}"
        else:
            why = f"no good line in {counted(len(read.files), 'file')} read"
        _keep_last_table(protocol, why, last_bad_line)
        return
    protocol.fill_array("Topology", [entry.row() for entry in read.entries.values()])
    skipped = f", {counted(len(read.bad_lines), 'bad line')} skipped" if read.bad_lines else ""
    protocol.set_parameters({
        "Rows": len(read.entries),
        "Last Run Status": f"OK{skipped}",
        "Last Good Run Time": started,
    })
    overridden = f"; {counted(read.overridden, 'entry', 'entries')} overridden by a later line" if read.overridden else ""
    protocol.log(f"topology built: {counted(len(read.entries), 'row')} from {counted(len(read.files), 'file')}{skipped}{overridden}")


def check_update_timer(protocol: QActionProtocol) -> None:
    """QAction 2, every minute: build the table when an update is due."""
    due = protocol.get_parameter("Next Update")
    if due is None or protocol.now() >= due:
        build_topology(protocol)


def interval_changed(protocol: QActionProtocol) -> None:
    """QAction 3: a new Update Interval counts from the last run."""
    last = protocol.get_parameter("Last Run Time")
    if last is not None:
        protocol.set_parameter("Next Update", last + protocol.get_parameter("Update Interval"))


# --------------------------------------------------------------------------------------------
# The protocol


class TelenetTopologyDatabase(Protocol):
    """The Telenet Topology Database connector (see the module's text): the Topology table built
    from the provisioning folder's CSV files, keeping the last good table when a run fails."""

    name = "Telenet Topology Database"
    version = "1.0.0.1"
    description = "Network element addresses and their Ninas network path details, from provisioning CSV files."
    pages = (
        Page("General", order=0),
        Page("Topology", order=1),
        Page("Configuration", order=2),
    )
    parameters = (
        # General: the last run
        Parameter(10, "Last Run Status", String(), default="Not run yet", save=True, page="General",
                  description="OK, OK with bad lines skipped, or Failed with the reason (the last good table is then kept)."),
        Parameter(11, "Last Run Time", DateTime(), save=True, page="General"),
        Parameter(12, "Files Read", Number(0), default=0, save=True, page="General"),
        Parameter(13, "Rows", Number(0), default=0, save=True, page="General", description="Rows of the Topology table."),
        Parameter(14, "Bad Lines", Number(0), default=0, save=True, page="General",
                  description="Lines the last run skipped (see Rejected Lines and the log)."),
        Parameter(15, "Last Error", String(), default="", save=True, page="General"),
        Parameter(16, "Last Good Run Time", DateTime(), save=True, page="General",
                  description="When the table was last built."),
        Parameter(17, "Next Update", DateTime(), save=True, page="General"),
        Parameter(20, "Execute Now", Button("Execute"), write=True, page="General",
                  description="Read the provisioning files now, without waiting for the next update."),
        # Configuration
        Parameter(100, "Provisioning Folder", String(), write=True, default="", save=True, page="Configuration",
                  description="The folder holding the provisioning CSV files."),
        Parameter(101, "File Pattern", String(), write=True, default="*.csv", save=True, page="Configuration",
                  description="Which file names of the folder are read (shell-style: * and ?)."),
        Parameter(102, "Update Interval", Number(60, 7 * 86_400, "s"), write=True, default=HOUR, save=True, page="Configuration"),
    )  # fmt: skip
    tables = (
        Table(1000, "Topology", save=True, page="Topology", columns=(
            Column(1001, "Network Element Address", String(), key=True),
            Column(1002, "Ninas Network Path Details", String()),
            Column(1003, "Source File", String()),
            Column(1004, "Line", Number(1)),
        )),
        Table(1100, "Rejected Lines", save=True, page="General", columns=(
            Column(1101, "Location", String(), key=True, description="file:line"),
            Column(1102, "File", String()),
            Column(1103, "Line", Number(1)),
            Column(1104, "Reason", String()),
            Column(1105, "Text", String(), description="The line as read, cut to 120 characters."),
        )),
    )  # fmt: skip
    timers = (Timer(1, seconds=60, qactions=(2,), at_startup=False, name="Update Check"),)
    qactions = (
        QAction(1, build_topology, triggers=(20,), after_startup=True, name="Build Topology"),
        QAction(2, check_update_timer, name="Update Check"),
        QAction(3, interval_changed, triggers=(102,), name="Update Interval Changed"),
    )


__all__ = [
    "BadLine",
    "FolderError",
    "TelenetTopologyDatabase",
    "TopologyEntry",
    "TopologyRead",
    "matching_files",
    "read_provisioning_file",
    "read_topology",
]
