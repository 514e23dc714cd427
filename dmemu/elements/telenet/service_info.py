"""The Service Info Table: the ticketing services (OSB) a Ticket Client or the Ticket Gateway can
talk to, kept only through CSV files (the help page: "this configuration is only possible by
importing or exporting a CSV file"), so the Client's table and the Gateway's stay the same.

The file is UTF-8 (a byte order mark is allowed), comma separated, with a header naming the
columns `SERVICE_INFO_COLUMNS` in any order, then one service per record::

    Service Name,Host,Port,Path,Description
    OSB Production,osb.telenet.be,8650,/osb/TicketingService,Telenet SAM ticketing

A file is taken whole or not at all: `parse_service_csv` refuses a file that is not UTF-8, a
header missing a column or naming an unknown or repeated one, a record with another number of
fields than the header, an empty service name or host, a name used twice, a port that is not a
whole number from 1 to 65535, a path not starting with ``/``, and a file without any service,
raising `ServiceInfoCsvError` with the file, the line and the reason; the table is then left
as it was. `service_csv_text` writes the table back in the same format, so an export imported
again gives the same table.

The QAction helpers (`import_service_table`, `export_service_table`) and `service_info_columns`
let both connectors declare and manage the table the same way.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from dmemu.protocol import Column, DmemuError, LogType, Number, QActionProtocol, String

SERVICE_INFO_COLUMNS = ("Service Name", "Host", "Port", "Path", "Description")
"""The CSV header's columns, and the Service Info Table's, in this order when written."""
DEFAULT_SERVICE_PATH = "/osb/TicketingService"


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
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ServiceInfoCsvError(source, line, f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = _header(reader, source)
        services = _records(reader, header, source)
    except csv.Error as error:
        raise ServiceInfoCsvError(source, reader.line_num, f"not valid CSV ({error})") from None
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


def _header(reader: Any, source: str) -> dict[str, int]:
    """Column name -> field position, from the first non-blank record."""
    for fields in reader:
        if not any(field.strip() for field in fields):
            continue
        names = [field.strip() for field in fields]
        line = reader.line_num
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ServiceInfoCsvError(source, line, f"the header names column {name!r} twice")
            seen.add(name)
        unknown = [name for name in names if name not in SERVICE_INFO_COLUMNS]
        if unknown:
            raise ServiceInfoCsvError(source, line, f"the header names unknown column(s) {unknown}; columns: {', '.join(SERVICE_INFO_COLUMNS)}")
        missing = [name for name in SERVICE_INFO_COLUMNS if name not in seen]
        if missing:
            raise ServiceInfoCsvError(source, line, f"the header lacks column(s) {missing}; columns: {', '.join(SERVICE_INFO_COLUMNS)}")
        return {name: position for position, name in enumerate(names)}
    raise ServiceInfoCsvError(source, 0, f"the file is empty; it needs a header: {','.join(SERVICE_INFO_COLUMNS)}")


def _records(reader: Any, header: dict[str, int], source: str) -> list[ServiceInfo]:
    services: list[ServiceInfo] = []
    lines: dict[str, int] = {}
    last_line = reader.line_num
    for fields in reader:
        line = last_line + 1  # where the record began (a quoted field may span lines)
        last_line = reader.line_num
        if not any(field.strip() for field in fields):
            continue  # a blank line
        if len(fields) != len(header):
            raise ServiceInfoCsvError(source, line, f"{len(fields)} fields where the header has {len(header)}")
        value = {name: fields[position].strip() for name, position in header.items()}
        name = value["Service Name"]
        if not name:
            raise ServiceInfoCsvError(source, line, "the Service Name is empty")
        if name in lines:
            raise ServiceInfoCsvError(source, line, f"service {name!r} is already listed on line {lines[name]}")
        if not value["Host"]:
            raise ServiceInfoCsvError(source, line, f"service {name!r}: the Host is empty")
        port_text = value["Port"]
        port = int(port_text) if port_text.isascii() and port_text.isdigit() else 0
        if not 1 <= port <= 65535:
            raise ServiceInfoCsvError(source, line, f"service {name!r}: Port {port_text!r} is not a whole number from 1 to 65535")
        path = value["Path"]
        if not path.startswith("/"):
            raise ServiceInfoCsvError(source, line, f"service {name!r}: Path {path!r} does not start with '/'")
        lines[name] = line
        services.append(ServiceInfo(name, value["Host"], port, path, value["Description"]))
    return services


# -- writing --------------------------------------------------------------------------------------


def service_csv_text(services: Iterable[ServiceInfo]) -> str:
    """The services as a CSV file's text, header first, in the format `parse_service_csv` reads."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SERVICE_INFO_COLUMNS)
    for service in services:
        writer.writerow(service.row())
    return out.getvalue()


def write_service_csv(path: str | os.PathLike[str], services: Iterable[ServiceInfo]) -> None:
    """Write the services to `path` whole (a temporary file replaces it): a reader never sees
    half a file. `ServiceInfoCsvError` when it cannot be written."""
    target = Path(path)
    text = service_csv_text(services)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
                file.write(text)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise ServiceInfoCsvError(str(path), 0, f"cannot be written: {error.strerror or error}") from None


# -- the table, from a QAction --------------------------------------------------------------------


def table_services(protocol: QActionProtocol, table: int | str) -> list[ServiceInfo]:
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
    "ServiceInfo",
    "ServiceInfoCsvError",
    "export_service_table",
    "import_service_table",
    "parse_service_csv",
    "read_service_csv",
    "service_csv_text",
    "service_info_columns",
    "table_services",
    "write_service_csv",
]
