"""The shape of a verdict rule (one file per rule in ``netmon.verdict.rules``).

A rule names itself, the criteria it can emit and the :class:`~netmon.inventory.Policy` fields
it reads, and yields :class:`Reason` s from a :class:`SiteContext`. A *settling* rule ends the
judgement with its verdict when it fires (``settles``; ``settle`` decides, for rules whose
reasons settle the verdict only sometimes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason, Verdict


class Rule:
    name: ClassVar[str]
    criteria: ClassVar[tuple[Criterion, ...]]
    reads: ClassVar[tuple[str, ...]] = ()  # Policy fields
    settles: ClassVar[Verdict | None] = None

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        raise NotImplementedError

    def began(self, ctx: SiteContext) -> float | None:
        """When the state this rule settles began, if before now (the verdict's ``since``)."""
        return None

    def settle(self, ctx: SiteContext, found: Sequence[Reason]) -> Verdict | None:
        """The verdict that ends the judgement now, or None to go on with the next rule."""
        return self.settles if found else None
