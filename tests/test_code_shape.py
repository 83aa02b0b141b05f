"""The shape of product code: functions a newcomer can read.

No function in netmon/, probes/ or exporters/ is longer than MAX_LINES, unless it is a measured
hot loop that says so with a ``# hot loop:`` comment (and what was measured) just above or
inside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("netmon", "probes", "exporters")
MAX_LINES = 50


def _functions(path: Path) -> list[tuple[str, int, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        (node.name, node.lineno, node.end_lineno or node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_there_is_product_code_to_check() -> None:
    assert len(_sources()) > 20


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_long_functions(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    long = []
    for name, start, end in _functions(path):
        above = start - 1
        while above > 0 and lines[above - 1].strip().startswith("#"):
            above -= 1  # the comment block just above the def counts
        body = lines[above:end]
        if end - start + 1 > MAX_LINES and not any("# hot loop:" in line for line in body):
            long.append(f"{path.relative_to(ROOT)}:{start}: {name} is {end - start + 1} lines")
    assert not long, "\n".join(long)
