"""Recurring maintenance in the inventory: a site's ``maintenance`` entry with ``every:``.

    maintenance:
      - {every: weekly, days: [tue], start: "02:00", duration: 2h, reason: BSNL work}
      - {every: daily, start: "23:30", duration: 1h, reason: nightly backup, timezone: UTC}
      - {every: monthly, days: [1, 15], start: "06:00", duration: 3h, reason: patching}

An occurrence begins at ``start`` (HH:MM, quoted: YAML reads an unquoted 12:30 as a number)
local time in ``timezone`` (an IANA name; default Asia/Kolkata) on each matching local day
(``daily``: every day; ``weekly``: the weekdays in ``days``; ``monthly``: the days of the month
in ``days``, a month without that day has none) and lasts ``duration`` of real time (at most
the period: a day, a week, 28 days), so across a DST change it ends ``duration`` after it
began. A start that a DST change skips is taken with the offset before the change (02:30 in a
spring-forward gap is 03:30 new time), an ambiguous one is its first occurrence (``fold=0``).

:meth:`Recurring.occurrences` expands the rule into concrete :class:`Maintenance` windows
overlapping any stretch of time: it looks at each local day from ``duration`` before the
stretch to its end, so a request costs O(days spanned + duration in days), a few microseconds
a day; nothing is expanded ahead of time.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from netmon.schema import Seconds, Strict, zone_name

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PERIOD = {"daily": 86400.0, "weekly": 7 * 86400.0, "monthly": 28 * 86400.0}
DEFAULT_ZONE = "Asia/Kolkata"
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _weekday(value: object) -> str:
    if isinstance(value, str) and value.lower() in WEEKDAYS:
        return value.lower()
    raise ValueError(f"not a weekday: {value!r} (mon, tue, wed, thu, fri, sat, sun)")


def _day_of_month(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 31:
        return value
    raise ValueError(f"not a day of the month (1 to 31): {value!r}")


def _hhmm(value: object) -> object:
    if isinstance(value, str) and _HHMM.match(value):
        return value
    raise ValueError('expected a time of day like "02:00", quoted (YAML reads 12:30 as a number)')


class Recurring(Strict):
    """Maintenance announced once for every day, week or month (see the module)."""

    every: Literal["daily", "weekly", "monthly"]
    days: list[str | int] | None = Field(default=None, validate_default=True)  # mon.., 1..31
    start: Annotated[str, BeforeValidator(_hhmm)]
    duration: Seconds
    reason: Annotated[str, Field(min_length=1)]
    timezone: str = DEFAULT_ZONE

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: object, info: ValidationInfo) -> object:
        every = info.data.get("every")
        if every == "daily" and value is not None:
            raise ValueError("a daily window takes no days")
        if every not in ("weekly", "monthly"):
            return value
        if not isinstance(value, list) or not value:
            example = "[tue, fri]" if every == "weekly" else "[1, 15]"
            raise ValueError(f"a {every} window needs a list of days, e.g. {example}")
        return [_weekday(d) if every == "weekly" else _day_of_month(d) for d in value]

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: float, info: ValidationInfo) -> float:
        every = info.data.get("every")
        if every in PERIOD and value > PERIOD[every]:
            raise ValueError(f"a {every} window lasts at most {PERIOD[every] / 86400:g} days")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return zone_name(value)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # zoneinfo keeps one instance per key

    def _on(self, day: dt.date) -> bool:
        if self.every == "daily":
            return True
        days = self.days or ()
        return (WEEKDAYS[day.weekday()] if self.every == "weekly" else day.day) in days

    def spans(self, start: float, end: float) -> list[tuple[float, float]]:
        """The occurrences overlapping ``[start, end)`` as Unix seconds, oldest first."""
        hh, mm = (int(p) for p in self.start.split(":"))
        at = dt.time(hh, mm)
        day = dt.datetime.fromtimestamp(start - self.duration, self.tz).date() - dt.timedelta(
            days=1
        )
        last = dt.datetime.fromtimestamp(end, self.tz).date()
        out = []
        while day <= last:
            if self._on(day):
                lo = dt.datetime.combine(day, at, self.tz).timestamp()
                if lo < end and lo + self.duration > start:
                    out.append((lo, lo + self.duration))
            day += dt.timedelta(days=1)
        return out
