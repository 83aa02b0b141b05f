"""Building blocks shared by every configuration model: the inventory and each probe kind's settings.

Kept outside ``netmon.inventory`` so a probe kind's settings module (``probes.snmp_settings``)
can use them without importing the inventory that imports it.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationInfo
from pydantic_core import ErrorDetails

from netmon.durations import bounded, format_duration, parse_duration

# Where a value sits in a config file: ("sites", 3, "devices", 0, "role").
Loc = tuple[str | int, ...]
FROM_CODE = {"numbers_are_seconds": True}  # validation context for values built in Python code


def _seconds(value: object, info: ValidationInfo) -> float:
    """A duration string (``5s``); from code (context :data:`FROM_CODE`) a number of seconds too."""
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if numeric and info.context and info.context.get("numbers_are_seconds"):
        return bounded(float(value))  # type: ignore[arg-type]
    return parse_duration(value)


# A positive duration. Files must give a unit (``60`` alone is an error: seconds or minutes?).
Seconds = Annotated[
    float,
    BeforeValidator(_seconds),
    PlainSerializer(format_duration, return_type=str),
    Field(gt=0.0),
]


# Numbers in files are strict: a boolean is not a count (``count: true`` is not 1), and
# neither is a string or 3.0. A real number may be written as an integer, never inf or nan.
Int = Annotated[int, Field(strict=True)]
Real = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class Strict(BaseModel):
    """Unknown keys are errors; values are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def field_name(loc: Loc) -> str:
    """``("sites", 3, "devices", 0, "role")`` -> ``sites[3].devices[0].role``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def error_loc(err: ErrorDetails) -> Loc:
    """pydantic's ``loc`` without the union branches and validator wrappers it puts in."""
    return tuple(p for p in err["loc"] if isinstance(p, int) or not _is_type_tag(p))


def error_message(err: ErrorDetails) -> str:
    """pydantic's message in the words of a config error (never the value: it may be a secret)."""
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    return err["msg"].removeprefix("Value error, ")


def _is_type_tag(part: str) -> bool:
    return (
        "[" in part
        or "(" in part
        or part in {"constrained-int", "int", "float", "str", "SecretStr"}
    )


def zone_name(value: str) -> str:
    """``value`` if it names an IANA time zone; a validator's ValueError otherwise."""
    try:
        ZoneInfo(value)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError("must be an IANA time zone name, e.g. Asia/Kolkata") from None
    return value
