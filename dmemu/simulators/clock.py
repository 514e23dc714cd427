"""How the simulated systems write and read times."""

from __future__ import annotations

import datetime as dt
import time

DAY = 86_400
YEAR = 365 * DAY

_ISO_DATES: dict[int, str] = {}  # day number -> "YYYY-MM-DDT": generated items fall on a few thousand days
_CLOCK_TIMES: tuple[str, ...] = ()  # "HH:MM:SSZ" for each second of a day, made with the first date


def iso_utc(epoch: float) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second: how the TMF APIs here write times.

    Items carry several each and pages carry thousands, so both halves come from tables."""
    day, second = divmod(int(epoch), DAY)
    date = _ISO_DATES.get(day)
    if date is None:
        date = _iso_date(day)
    return date + _CLOCK_TIMES[second]


def _iso_date(day: int) -> str:
    global _CLOCK_TIMES
    if not _CLOCK_TIMES:
        minutes = [f"{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60)]
        _CLOCK_TIMES = tuple(minute + f"{second:02d}Z" for minute in minutes for second in range(60))
    if len(_ISO_DATES) >= 20_000:
        _ISO_DATES.clear()
    date = _ISO_DATES[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * DAY))
    return date


SNOW_FORMAT = "%Y-%m-%d %H:%M:%S"  # ServiceNow's sys_updated_on, UTC, second precision


def parse_snow(text: str) -> float:
    """Epoch seconds of a ServiceNow ``YYYY-MM-DD HH:MM:SS`` (UTC); ValueError when malformed."""
    return dt.datetime.strptime(text, SNOW_FORMAT).replace(tzinfo=dt.timezone.utc).timestamp()
