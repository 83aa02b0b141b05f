"""Durations as people write them in config files: ``500ms``, ``5s``, ``2m``, ``24h``, ``30d``.

At most :data:`MAX_SECONDS` (400 days): more is a typo, and 400 nines of days would otherwise
become infinity (an API showing ``window_seconds: null``).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_SECONDS = 400 * 86400.0
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(value: object) -> float:
    """Seconds from a duration string; raises ValueError with a message fit for a config error."""
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            return bounded(float(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(f"expected a duration like 500ms, 5s, 2m, 24h or 30d, got {value!r}")


def bounded(seconds: float) -> float:
    """``seconds`` if at most :data:`MAX_SECONDS`; else a ValueError fit for a config error."""
    if not seconds <= MAX_SECONDS:  # inf and nan too
        raise ValueError(f"a duration must be at most {format_duration(MAX_SECONDS)}")
    return seconds


def format_duration(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000, 3):g}ms"


Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
