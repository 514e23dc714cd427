"""How the simulated systems write and read times."""

from __future__ import annotations

import datetime as dt

SNOW_FORMAT = "%Y-%m-%d %H:%M:%S"  # ServiceNow's sys_updated_on, UTC, second precision


def parse_snow(text: str) -> float:
    """Epoch seconds of a ServiceNow ``YYYY-MM-DD HH:MM:SS`` (UTC); ValueError when malformed."""
    return dt.datetime.strptime(text, SNOW_FORMAT).replace(tzinfo=dt.timezone.utc).timestamp()
