"""What a verdict is made of: the verdict, its reasons, and the judgement that holds both."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from netmon.verdict.criteria import Criterion


class Verdict(StrEnum):
    """A site's verdict: ``fully_functional`` (nothing failed), ``degraded`` (some criterion
    failed), ``down`` (every uplink unreachable, or no AP up), ``not_installed`` (no gear, or
    none ever answered), ``unknown`` (too few probes in the window)."""

    FULLY_FUNCTIONAL = "fully_functional"
    DEGRADED = "degraded"
    DOWN = "down"
    NOT_INSTALLED = "not_installed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Reason:
    """One failed criterion; ``measured`` and ``threshold`` are in ``criterion.unit``."""

    criterion: Criterion
    message: str
    device: str | None = None
    measured: float | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    reasons: tuple[Reason, ...]
    outage_since: float | None = None  # start of the outage behind a ``down`` verdict
