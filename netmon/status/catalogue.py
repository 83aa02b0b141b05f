"""The status board's words, numbers and dates in English or Hindi.

Every string a page shows is a key of ``messages.yaml`` with an ``en`` and a ``hi`` text
(:func:`catalogue` refuses a file where one is missing). :class:`Words` is one language's view:
``t(key, **fields)``, numbers in Indian grouping (1,23,456 in both languages: Hindi text in
government use keeps the international digits), dates day-month-year with the month's name,
times in the report time zone (IST by default, ``NETMON_REPORT_TIMEZONE``), durations, and a
verdict reason in plain words from its criterion, device and figures.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml

from netmon.verdict import Criterion, Unit

Lang = Literal["en", "hi"]
LANGS: tuple[Lang, ...] = ("en", "hi")


@functools.cache
def catalogue() -> dict[str, dict[str, str]]:
    """The catalogue: key → {en, hi}; ValueError naming a key without both."""
    text = resources.files("netmon.status").joinpath("messages.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    bad = [k for k, v in raw.items() if not isinstance(v, dict) or set(v) != set(LANGS)]
    if bad:
        raise ValueError(f"messages.yaml: keys without exactly en and hi: {', '.join(bad)}")
    return {str(k): {lang: str(v[lang]) for lang in LANGS} for k, v in raw.items()}


def group_digits(n: int) -> str:
    """Indian grouping: 1234567 → 12,34,567."""
    sign, digits = ("-" if n < 0 else ""), str(abs(n))
    if len(digits) <= 3:
        return sign + digits
    head, tail = digits[:-3], digits[-3:]
    pairs = [head[max(0, i - 2) : i] for i in range(len(head), 0, -2)][::-1]
    return sign + ",".join([*pairs, tail])


class Words:
    """One language's strings, numbers and dates (times shown in ``tz``)."""

    def __init__(self, lang: Lang, tz: ZoneInfo) -> None:
        self.lang = lang
        self.tz = tz
        self._texts = {k: v[lang] for k, v in catalogue().items()}

    def t(self, key: str, **fields: Any) -> str:
        text = self._texts[key]
        return text.format(**fields) if fields else text

    def number(self, n: float) -> str:
        return group_digits(round(n))

    def share(self, ratio: float | None, digits: int = 1) -> str:
        """A ratio as a percentage (``—`` for none): 0.9751 → 97.5%."""
        if ratio is None:
            return "—"
        text = f"{ratio * 100:.{digits}f}"
        whole, _, frac = text.partition(".")
        return group_digits(int(whole)) + ("." + frac if frac else "") + "%"

    def date(self, day: dt.date | str) -> str:
        d = dt.date.fromisoformat(day) if isinstance(day, str) else day
        return f"{d.day} {self.t(f'month.{d.month}')} {d.year}"

    def local(self, ts: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(ts, self.tz)

    def time(self, ts: float) -> str:
        return self.local(ts).strftime("%H:%M")

    def when(self, ts: float | None) -> str:
        """A moment as the date and the time of day in the report time zone."""
        if ts is None:
            return "—"
        return f"{self.date(self.local(ts).date())}, {self.time(ts)}"

    def duration(self, seconds: float) -> str:
        """Whole days, hours and minutes (seconds under a minute): 3900 → 1 h 5 min."""
        s = round(seconds)
        if s < 60:
            return self.t("unit.seconds", n=s)
        d, rest = divmod(s // 60, 1440)
        h, m = divmod(rest, 60)
        parts = [self.t("unit.days", n=d)] if d else []
        parts += [self.t("unit.hours", n=h)] if h else []
        parts += [self.t("unit.minutes", n=m)] if m and not d else []
        return " ".join(parts)

    def figure(self, criterion: Criterion, value: float | None) -> str:
        """A reason's measured figure or threshold in its criterion's unit."""
        if value is None:
            return "—"
        if criterion.unit is Unit.RATIO:
            return self.share(value)
        if criterion.unit is Unit.SECONDS:
            if value < 1:
                return self.t("unit.ms", n=round(value * 1000))
            return self.duration(value)
        return self.number(value)

    def listed(self, items: list[str]) -> str:
        """``a``, ``a and b``, ``a, b and c`` (in the page's language)."""
        if len(items) <= 1:
            return "".join(items)
        return f"{', '.join(items[:-1])} {self.t('list.and')} {items[-1]}"

    def recurring(self, rule: Mapping[str, Any]) -> str:
        """A recurring maintenance rule (netmon.status.data.recurring_dict) in words: its time
        of day as written, in its own time zone (IST for Asia/Kolkata)."""
        every = rule["every"]
        days = [self.t(f"weekday.{d}") if every == "weekly" else str(d) for d in rule["days"]]
        zone = "IST" if rule["timezone"] == "Asia/Kolkata" else rule["timezone"]
        return self.t(f"recurring.{every}", days=self.listed(days), time=rule["start"],
                      zone=zone, duration=self.duration(rule["duration"]))  # fmt: skip

    def reason(self, reason: Mapping[str, Any]) -> str:
        """A verdict reason (``criterion``, ``device``, ``measured``, ``threshold``, ``message``)
        in plain words; one of an unknown criterion keeps its message."""
        try:
            c = Criterion(str(reason.get("criterion")))
        except ValueError:
            return self.t("reason.other", text=reason.get("message") or "?")
        device = reason.get("device") or "—"
        return self.t(f"reason.{c.value}", device=device,
                      measured=self.figure(c, reason.get("measured")),
                      threshold=self.figure(c, reason.get("threshold")))  # fmt: skip
