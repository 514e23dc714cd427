"""How the simulated systems write and read times."""

from __future__ import annotations

import datetime as dt

SNOW_FORMAT = "%Y-%m-%d %H:%M:%S"  # ServiceNow's sys_updated_on, UTC, second precision


def iso_utc(epoch: float) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second: how the TMF APIs here write times."""
    return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_snow(text: str) -> float:
    """Epoch seconds of a ServiceNow ``YYYY-MM-DD HH:MM:SS`` (UTC); ValueError when malformed."""
    return dt.datetime.strptime(text, SNOW_FORMAT).replace(tzinfo=dt.timezone.utc).timestamp()
