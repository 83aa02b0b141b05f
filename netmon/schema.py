"""Building blocks shared by every configuration model: the inventory and each probe kind's settings.

Kept outside ``netmon.inventory`` so a probe kind's settings module (``probes.snmp_settings``)
can use them without importing the inventory that imports it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from netmon.durations import Duration

Loc = tuple[
    str | int, ...
]  # where a value sits in a config file: ("sites", 3, "devices", 0, "role")
Seconds = Annotated[Duration, Field(gt=0.0)]


class Strict(BaseModel):
    """Unknown keys are errors; values are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def field_name(loc: Loc) -> str:
    """``("sites", 3, "devices", 0, "role")`` -> ``sites[3].devices[0].role``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
