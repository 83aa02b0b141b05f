"""Every command README.md shows works as written from a checkout.

Commands are the lines of its shell code blocks and its inline code that start with ``netmon``,
``.venv/bin/netmon`` (or another venv's ``bin/netmon``), ``scripts/`` (each optionally after
``sudo``); a line of a shell block is split at ``&&`` and ``;``. Each is checked: a script
exists and is executable; a netmon command line (and what ``scripts/run``/``scripts/demo`` hand
to netmon) parses with netmon's own parser, so its subcommands and flags exist; and the harmless
ones (``--version``, ``check-config`` on files that exist) are run and must succeed.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from netmon.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PROGRAMS = ("netmon", ".venv/bin/netmon")
SCRIPTS = "scripts/"
SHELL_BLOCKS = {"sh", "bash", "shell", "console"}
# What each script passes its arguments to (None: its own options, listed here).
SCRIPT_ARGS: dict[str, list[str] | None] = {
    "scripts/run": ["run"],
    "scripts/demo": ["lab", "demo"],
    "scripts/setup": None,
    "scripts/test": None,  # pytest's arguments
    "scripts/lock": None,  # uv pip compile's arguments
}
SCRIPT_OPTIONS = {
    "scripts/setup": {"--test"},
    "scripts/lock": {"--upgrade"},
}  # the options they take


def shell_lines(text: str) -> list[str]:
    lines, lang = [], None
    for line in text.splitlines():
        fence = re.match(r"^\s*```\s*(\S*)", line)
        if fence:
            lang = None if lang is not None else fence.group(1) or ""
            continue
        if lang in SHELL_BLOCKS:
            lines += [part.strip() for part in re.split(r"&&|;", line.split(" #")[0])]
    return lines


def inline_code(text: str) -> list[str]:
    outside = re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.M | re.S)
    return re.findall(r"`([^`\n]+)`", outside.replace("\n", " "))


def is_netmon(program: str) -> bool:
    return program in PROGRAMS or program.endswith("/bin/netmon")  # e.g. /opt/netmon/.venv/bin/


def commands() -> list[str]:
    text = README.read_text()
    found = []
    for candidate in [*shell_lines(text), *inline_code(text)]:
        words = candidate.removeprefix("sudo ").strip()
        first = words.split(" ")[0]
        if (is_netmon(first) or first.startswith(SCRIPTS)) and words not in found:
            found.append(words)
    return found


COMMANDS = commands()


def test_the_readme_shows_the_commands_a_newcomer_needs() -> None:
    shown = {c.split()[0] for c in COMMANDS}
    assert {"scripts/run", "scripts/test", "scripts/demo", ".venv/bin/netmon"} <= shown
    assert any(c.startswith(".venv/bin/netmon check-config netmon/data/") for c in COMMANDS)
    assert (
        "`kill -HUP <pid>`" in README.read_text()
        and "systemctl reload netmon" in README.read_text()
    )


def parse(argv: list[str]) -> str:
    """'' if netmon's parser accepts ``argv``, else its error message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            return "" if exc.code == 0 else err.getvalue().strip().splitlines()[-1]
    return ""


def bare_mention(argv: list[str], error: str) -> bool:
    """``netmon check-config`` in prose names a subcommand; only its arguments are missing."""
    return "the following arguments are required" in error and not any(
        a.startswith("-") or "." in a or "/" in a or "=" in a for a in argv
    )


def netmon_argv(command: str) -> list[str] | None:
    """The arguments netmon gets from ``command`` (a netmon or script command line)."""
    words = shlex.split(command.replace("…", "FILE"))
    program, args = words[0], words[1:]
    if is_netmon(program):
        return args
    forwarded = SCRIPT_ARGS.get(program)
    return None if forwarded is None else [*forwarded, *args]


@pytest.mark.parametrize("command", COMMANDS)
def test_command_exists_and_parses(command: str) -> None:
    program = shlex.split(command)[0]
    if program.startswith("scripts/"):
        script = REPO / program
        assert script.is_file() and os.access(script, os.X_OK), (
            f"{program}: not an executable script"
        )
        assert program in SCRIPT_ARGS, (
            f"{program}: say in tests/test_readme.py where its arguments go"
        )
        if program in SCRIPT_OPTIONS:
            flags = {a for a in shlex.split(command)[1:] if a.startswith("-")}
            unknown = flags - SCRIPT_OPTIONS[program]
            assert not unknown, f"{command}: {program} has no option {sorted(unknown)}"
            assert all(flag in script.read_text() for flag in flags), f"{command}: not in {program}"
    argv = netmon_argv(command)
    if argv is None:
        return
    error = parse(argv)
    assert not error or bare_mention(argv, error), f"{command}: {error}"


def harmless(command: str) -> bool:
    argv = netmon_argv(command)
    if not argv or shlex.split(command)[0] not in PROGRAMS:
        return False
    if argv == ["--version"]:
        return True
    return (
        argv[0] == "check-config" and len(argv) > 1 and all((REPO / a).is_file() for a in argv[1:])
    )


HARMLESS = [c for c in COMMANDS if harmless(c)]


def test_some_commands_are_run() -> None:
    assert any("--version" in c for c in HARMLESS) or any("check-config" in c for c in HARMLESS)
    assert any("check-config" in c for c in HARMLESS)


def installed_netmon() -> str:
    """``.venv/bin/netmon`` of the checkout, else the netmon of the venv running the tests."""
    local = REPO / ".venv" / "bin" / "netmon"
    return str(local) if local.exists() else str(Path(sys.executable).with_name("netmon"))


@pytest.mark.parametrize("command", HARMLESS)
def test_harmless_command_runs(command: str) -> None:
    argv = [installed_netmon(), *(netmon_argv(command) or [])]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr


def _layout() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_the_layout_names_only_what_exists() -> None:
    """Every folder and module the Layout section names is in the tree."""
    layout = _layout()
    names = re.findall(r"[\w/]+\.py|\b[\w]+/(?:[\w]+/)*", layout)
    assert len(names) > 20
    found = {p.name for p in REPO.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts}
    missing = [n for n in names if n.rstrip("/").split("/")[-1] not in found]
    assert not missing, f"README Layout names what the tree lacks: {missing}"


def test_the_layout_names_every_product_module() -> None:
    """Every probe module and every top-level product package appears in the Layout section."""
    layout = _layout()
    modules = [p.name for p in (REPO / "probes").glob("*.py") if p.name not in {"__init__.py"}]
    packages = [p.name + "/" for p in (REPO / "netmon").iterdir() if (p / "__init__.py").exists()]
    missing = [m for m in modules + packages if m not in layout]
    assert not missing, f"README Layout misses: {missing}"
