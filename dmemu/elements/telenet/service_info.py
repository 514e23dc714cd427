"""The Service Info Table: the ticketing services (OSB) a Ticket Client or the Ticket Gateway can
talk to, kept only through CSV files (the help page: "this configuration is only possible by
importing or exporting a CSV file"). Both connectors declare the table, its CSV parameters and
*Service Selection* with the same helpers here, and `create_telenet_suite` imports the same CSV
into the Gateway and every Client and selects the same service in each, so "the info is the
same as in the Gateway".

The file is read by `csv_files.csv_lines` (UTF-8, a byte order mark allowed, one record per
line, fields trimmed, blank lines skipped), with a header naming the columns
`SERVICE_INFO_COLUMNS` in any order, then one service per line::

    Service Name,Host,Port,Path,Description
    OSB Production,osb.telenet.be,8650,/osb/TicketingService,Telenet SAM ticketing

A file is taken whole or not at all: `parse_service_csv` refuses a file that is not UTF-8, a
header missing a column or naming an unknown or repeated one, a record with another number of
fields than the header, an empty service name or host, a name used twice, a port that is not a
whole number from 1 to 65535, a host or port the engine's `Connection` refuses (a space in the
host, a scheme other than http or https), a path not starting with ``/``, and a file without
any service, raising `ServiceInfoCsvError` with the file, the line and the reason; the table is then left
as it was. `service_csv_text` writes the table back in the same format, so an export imported
again gives the same table.

For a protocol: `service_info_table` and `service_info_parameters` declare the table and the
parameters (*CSV File Path*, *Import CSV*, *Export CSV*, *CSV Status*, *Service Selection*,
*Active Service*); the QActions `import_csv`, `export_csv` and `select_service` run them, and
`selected_service` tells a QAction which service to talk to (None when none is selected).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from dmemu.protocol import (
    Button,
    Column,
    Connection,
    ConnectionSettingError,
    DmemuError,
    LogType,
    Number,
    Parameter,
    QActionProtocol,
    String,
    Table,
)

from .csv_files import CsvLine, csv_lines, csv_text, field_count_problem, write_csv_file
from .texts import counted

SERVICE_INFO_COLUMNS = ("Service Name", "Host", "Port", "Path", "Description")
"""The CSV header's columns, and the Service Info Table's, in this order when written."""
DEFAULT_SERVICE_PATH = "/osb/TicketingService"
SERVICE_INFO_TABLE = "Service Info Table"


class ServiceInfoCsvError(DmemuError, ValueError):
    """A Service Info CSV file is refused; `path`, `line` (1-based, 0 when the whole file is at
    fault) and `reason` say where and why. Nothing was imported."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        where = f"{path}, line {line}" if line else path
        super().__init__(f"Service Info CSV {where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@attrs.frozen
class ServiceInfo:
    """One ticketing service: where the OSB listens (host, port, HTTP path) and what it is."""

    name: str
    host: str
    port: int
    path: str = DEFAULT_SERVICE_PATH
    description: str = ""

    def row(self) -> list[Any]:
        """The service as a Service Info Table row (cells in `SERVICE_INFO_COLUMNS` order)."""
        return [self.name, self.host, self.port, self.path, self.description]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ServiceInfo:
        name, host, port, path, description = row[:5]
        return cls(name, host or "", int(port or 0), path or DEFAULT_SERVICE_PATH, description or "")


def service_info_columns(first_id: int) -> tuple[Column, ...]:
    """The Service Info Table's columns with parameter ids from `first_id` up (read-only: the
    table changes only by import)."""
    types = (String(), String(), Number(1, 65535), String(), String())
    return tuple(
        Column(first_id + offset, name, kind, key=offset == 0) for offset, (name, kind) in enumerate(zip(SERVICE_INFO_COLUMNS, types))
    )


# -- reading --------------------------------------------------------------------------------------


def parse_service_csv(data: bytes, source: str = "<csv>") -> list[ServiceInfo]:
    """The services in a CSV file's bytes; `ServiceInfoCsvError` names `source`, the line and
    the reason of the first problem found."""
    lines = csv_lines(data)
    header = _header(lines, source)
    services = _records(lines, header, source)
    if not services:
        raise ServiceInfoCsvError(source, 0, "the file lists no service")
    return services


def read_service_csv(path: str | os.PathLike[str]) -> list[ServiceInfo]:
    """The services in the CSV file at `path` (see `parse_service_csv`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ServiceInfoCsvError(str(path), 0, f"cannot be read: {error.strerror or error}") from None
    return parse_service_csv(data, str(path))


def _header(lines: Iterator[CsvLine], source: str) -> dict[str, int]:
    """Column name -> field position, from the first non-blank line."""
    for line in lines:
        if line.problem:
            raise ServiceInfoCsvError(source, line.number, line.problem)
        names = list(line.fields)
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ServiceInfoCsvError(source, line.number, f"the header names column {name!r} twice")
            seen.add(name)
        unknown = [name for name in names if name not in SERVICE_INFO_COLUMNS]
        if unknown:
            raise ServiceInfoCsvError(source, line.number, f"the header names unknown column(s) {unknown}; columns: {', '.join(SERVICE_INFO_COLUMNS)}")
        missing = [name for name in SERVICE_INFO_COLUMNS if name not in seen]
        if missing:
            raise ServiceInfoCsvError(source, line.number, f"the header lacks column(s) {missing}; columns: {', '.join(SERVICE_INFO_COLUMNS)}")
        return {name: position for position, name in enumerate(names)}
    raise ServiceInfoCsvError(source, 0, f"the file is empty; it needs a header: {','.join(SERVICE_INFO_COLUMNS)}")


def _records(lines: Iterator[CsvLine], header: dict[str, int], source: str) -> list[ServiceInfo]:
    services: list[ServiceInfo] = []
    first_lines: dict[str, int] = {}
    for line in lines:
        problem = line.problem or field_count_problem(line, len(header))
        if problem:
            raise ServiceInfoCsvError(source, line.number, problem)
        value = {name: line.fields[position] for name, position in header.items()}
        name = value["Service Name"]
        if not name:
            raise ServiceInfoCsvError(source, line.number, "the Service Name is empty")
        if name in first_lines:
            raise ServiceInfoCsvError(source, line.number, f"service {name!r} is already listed on line {first_lines[name]}")
        if not value["Host"]:
            raise ServiceInfoCsvError(source, line.number, f"service {name!r}: the Host is empty")
        port_text = value["Port"]
        port = int(port_text) if port_text.isascii() and port_text.isdigit() else 0
        if not 1 <= port <= 65535:
            raise ServiceInfoCsvError(source, line.number, f"service {name!r}: Port {port_text!r} is not a whole number from 1 to 65535")
        try:
            Connection(host=value["Host"], port=port)  # the engine's own checks of a connection's host and port
        except ConnectionSettingError as error:
            raise ServiceInfoCsvError(source, line.number, f"service {name!r}: {error}") from None
        path = value["Path"]
        if not path.startswith("/"):
            raise ServiceInfoCsvError(source, line.number, f"service {name!r}: Path {path!r} does not start with '/'")
        first_lines[name] = line.number
        services.append(ServiceInfo(name, value["Host"], port, path, value["Description"]))
    return services


# -- writing --------------------------------------------------------------------------------------


def service_csv_text(services: Iterable[ServiceInfo]) -> str:
    """The services as a CSV file's text, header first, in the format `parse_service_csv` reads."""
    return csv_text(SERVICE_INFO_COLUMNS, (service.row() for service in services))


def write_service_csv(path: str | os.PathLike[str], services: Iterable[ServiceInfo]) -> None:
    """Write the services to `path` whole (a temporary file replaces it): a reader never sees
    half a file. `ServiceInfoCsvError` when it cannot be written."""
    try:
        write_csv_file(path, SERVICE_INFO_COLUMNS, [service.row() for service in services])
    except OSError as error:
        raise ServiceInfoCsvError(str(path), 0, f"cannot be written: {error.strerror or error}") from None


# -- the table, from a QAction --------------------------------------------------------------------


class ServiceSelectionError(DmemuError, ValueError):
    """Service Selection named a service the Service Info Table does not hold."""


def service_info_table(first_id: int, page: str) -> Table:
    """The Service Info Table, saved, on `page`, its columns' ids from `first_id` + 1 up."""
    return Table(first_id, SERVICE_INFO_TABLE, service_info_columns(first_id + 1), save=True, page=page,
                 description="The ticketing services; changed only by Import CSV.")  # fmt: skip


def service_info_parameters(first_id: int, page: str, used_for: str) -> tuple[Parameter, ...]:
    """The parameters that manage the Service Info Table and choose the service (ids
    `first_id` .. `first_id` + 12, on `page`); `used_for` says what the selected service gets."""
    return (
        Parameter(first_id, "CSV File Path", String(), write=True, default="", save=True, page=page,
                  description="The CSV file Import CSV reads and Export CSV writes."),
        Parameter(first_id + 1, "Import CSV", Button("Import"), write=True, page=page),
        Parameter(first_id + 2, "Export CSV", Button("Export"), write=True, page=page),
        Parameter(first_id + 3, "CSV Status", String(), default="", page=page),
        Parameter(first_id + 10, "Service Selection", String(), write=True, default="", save=True, page=page,
                  description=f"The ticketing service {used_for}: a Service Name of the Service Info Table."),
        Parameter(first_id + 11, "Active Service", String(), default="", page=page),
        Parameter(first_id + 12, "Selected Service", String(), default="", save=True, description="The accepted Service Selection."),
    )  # fmt: skip


def selected_service(protocol: QActionProtocol) -> ServiceInfo | None:
    """The service Service Selection chose, or None when none is (or it left the table)."""
    name = protocol.get_parameter("Selected Service") or ""
    if not name or not protocol.exists(SERVICE_INFO_TABLE, name):
        return None
    return ServiceInfo.from_row(protocol.get_row(SERVICE_INFO_TABLE, name))


def show_active_service(protocol: QActionProtocol) -> None:
    """Active Service: the selected service and where it listens."""
    service = selected_service(protocol)
    protocol.set_parameter("Active Service", "" if service is None else f"{service.name} ({service.host}:{service.port}{service.path})")


def import_csv(protocol: QActionProtocol) -> None:
    """QAction on Import CSV: the table becomes the file's services, or stays as it was (CSV
    Status says why). A selected service the file no longer lists is unselected."""
    path = protocol.get_parameter("CSV File Path") or ""
    try:
        services = import_service_table(protocol, SERVICE_INFO_TABLE, path)
    except ServiceInfoCsvError as error:
        protocol.set_parameter("CSV Status", f"Import refused: {error}; the Service Info Table is unchanged")
        raise
    status = f"Imported {counted(len(services), 'service')} from {path.strip()}"
    selected = protocol.get_parameter("Selected Service") or ""
    if selected and selected not in {service.name for service in services}:
        protocol.set_parameters({"Selected Service": "", "Service Selection": ""})
        protocol.log(f"Service Selection {selected!r} cleared: the imported table no longer lists it", LogType.ERROR)
        status += f"; the selected service {selected!r} is no longer listed, so none is selected"
    protocol.set_parameter("CSV Status", status)
    show_active_service(protocol)


def export_csv(protocol: QActionProtocol) -> None:
    """QAction on Export CSV: the table written to CSV File Path, in the format Import CSV reads."""
    path = protocol.get_parameter("CSV File Path") or ""
    try:
        services = export_service_table(protocol, SERVICE_INFO_TABLE, path)
    except ServiceInfoCsvError as error:
        protocol.set_parameter("CSV Status", f"Export failed: {error}")
        raise
    protocol.set_parameter("CSV Status", f"Exported {counted(len(services), 'service')} to {path.strip()}")


def select_service(protocol: QActionProtocol) -> None:
    """QAction on Service Selection: one of the table's services (empty: none); anything else is
    refused (`ServiceSelectionError`) and the selection goes back to the service in use."""
    chosen = (protocol.trigger_value or "").strip()
    if chosen and not protocol.exists(SERVICE_INFO_TABLE, chosen):
        previous = protocol.get_parameter("Selected Service") or ""
        protocol.set_parameter("Service Selection", previous)
        known = ", ".join(repr(key) for key in protocol.get_keys(SERVICE_INFO_TABLE)) or "none (import a CSV first)"
        raise ServiceSelectionError(f"Service Selection {chosen!r} refused: the Service Info Table lists {known}; {previous or 'no service'!r} stays selected")
    if chosen != protocol.get_parameter("Selected Service"):
        protocol.log(f"Service Selection: {chosen or 'none'}")
    protocol.set_parameter("Selected Service", chosen)
    show_active_service(protocol)


def table_services(protocol: QActionProtocol, table: int | str = SERVICE_INFO_TABLE) -> list[ServiceInfo]:
    """The services in the element's Service Info Table, in table order."""
    return [ServiceInfo.from_row(protocol.get_row(table, key)) for key in protocol.get_keys(table)]


def import_service_table(protocol: QActionProtocol, table: int | str, path: str) -> list[ServiceInfo]:
    """Replace the Service Info Table with the services of the CSV at `path`; a refused file
    raises `ServiceInfoCsvError` (logged) and leaves the table as it was."""
    if not path.strip():
        raise ServiceInfoCsvError("(no file)", 0, "the CSV File Path is empty")
    try:
        services = read_service_csv(path.strip())
    except ServiceInfoCsvError as error:
        protocol.log(str(error), LogType.ERROR)
        raise
    protocol.fill_array(table, [service.row() for service in services])
    protocol.log(f"Service Info Table imported from {path.strip()}: {len(services)} service(s)")
    return services


def export_service_table(protocol: QActionProtocol, table: int | str, path: str) -> list[ServiceInfo]:
    """Write the Service Info Table to the CSV at `path`; `ServiceInfoCsvError` (logged) when it
    cannot be written."""
    if not path.strip():
        raise ServiceInfoCsvError("(no file)", 0, "the CSV File Path is empty")
    services = table_services(protocol, table)
    try:
        write_service_csv(path.strip(), services)
    except ServiceInfoCsvError as error:
        protocol.log(str(error), LogType.ERROR)
        raise
    protocol.log(f"Service Info Table exported to {path.strip()}: {len(services)} service(s)")
    return services


__all__ = [
    "DEFAULT_SERVICE_PATH",
    "SERVICE_INFO_COLUMNS",
    "SERVICE_INFO_TABLE",
    "ServiceInfo",
    "ServiceInfoCsvError",
    "ServiceSelectionError",
    "export_csv",
    "export_service_table",
    "import_csv",
    "import_service_table",
    "parse_service_csv",
    "read_service_csv",
    "select_service",
    "selected_service",
    "service_csv_text",
    "service_info_columns",
    "service_info_parameters",
    "service_info_table",
    "show_active_service",
    "table_services",
    "write_service_csv",
]
