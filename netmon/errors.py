"""netmon's exception tree. Lower libraries' errors are translated here with ``raise ... from``.

    NetmonError
    ├── ConfigError          the inventory or settings are invalid (carries every problem found)
    ├── StoreError           the database cannot be reached or written
    └── ProbeUnavailable     a probe engine cannot start (e.g. no ICMP privilege)

A down device is not an exception: probes return it as data (see ``probes.base``).
"""

from __future__ import annotations

from dataclasses import dataclass


class NetmonError(Exception):
    """Base of every error netmon raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration file, located as precisely as the file allows."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(NetmonError):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StoreError(NetmonError):
    """The database failed; results that were taken are kept in memory and retried."""


class ProbeUnavailable(NetmonError):
    """A probe engine cannot run on this machine (the message says how to fix it)."""
