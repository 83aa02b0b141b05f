"""CPU seconds of a whole process tree, read from /proc: what a process and all its children cost.

    from procstat import ProcessTree
    tree = ProcessTree(pid)
    start = tree.sample()              # at the start of the measured interval
    ...
    cpu = tree.sample() - start        # CPU seconds (user + system) spent during the interval

A sample is, over the root and every live descendant (found recursively through
``/proc/<pid>/task/<tid>/children``, or by scanning ``/proc/*/stat`` for parent ids where the
kernel lacks CONFIG_PROC_CHILDREN), ``utime + stime + cutime + cstime`` from ``/proc/<pid>/stat``.
``utime + stime`` covers every thread of a live process; ``cutime + cstime`` covers its children
that have exited and been waited for, so a child that ends between two samples is still counted
(in its parent's figure) and nothing is counted twice. The difference of two samples is therefore
the CPU the tree spent between them, whatever processes came and went — e.g. ``netmon run`` as
a server plus a poller child, or a shell that runs one ``fping`` after another.

Not seen: a descendant that is re-parented away from the tree (double fork, daemon) and children
that exit without being waited for before the last sample. A sample costs one read per process
of the tree (plus one per process on the host when scanning), a few hundred microseconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICK = os.sysconf("SC_CLK_TCK")  # /proc/<pid>/stat counts CPU time in clock ticks
# CONFIG_PROC_CHILDREN: /proc/<pid>/task/<tid>/children lists the children each thread forked
HAS_CHILDREN_FILES = (PROC / "self" / "task" / str(os.getpid()) / "children").exists()
ChildrenOf = Callable[[int], list[int]]


@dataclass(frozen=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` a CPU sample needs (times in seconds)."""

    pid: int
    ppid: int
    comm: str
    own: float  # utime + stime: every thread of the process
    reaped: float  # cutime + cstime: its children that have exited and been waited for

    @property
    def total(self) -> float:
        return self.own + self.reaped


def read_stat(pid: int) -> Stat | None:
    """``/proc/<pid>/stat``, or None when the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ppid ..." - comm may hold spaces and parentheses: split at the last ')'
    head, _, rest = text.rpartition(")")
    fields = rest.split()  # fields[0] is field 3 of proc(5) (state), so field n is fields[n - 3]
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return Stat(
        pid=pid,
        ppid=int(fields[1]),
        comm=head.partition("(")[2],
        own=(utime + stime) / TICK,
        reaped=(cutime + cstime) / TICK,
    )


def _children_files(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (a child is listed under the thread that forked it)."""
    out: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except FileNotFoundError:
        return out  # the process ended
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue  # the thread ended
    return out


def _children_by_scan() -> dict[int, list[int]]:
    """ppid -> pids, from every ``/proc/<pid>/stat`` on the host."""
    out: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (st := read_stat(int(entry.name))) is not None:
            out.setdefault(st.ppid, []).append(st.pid)
    return out


class ProcessTree:
    """A process and its descendants; :meth:`sample` is their CPU seconds so far (see module)."""

    def __init__(self, root: int) -> None:
        self.root = root

    def pids(self) -> list[int]:
        """The root and its live descendants, root first (empty once the root is gone)."""
        if not (PROC / str(self.root)).exists():
            return []
        if HAS_CHILDREN_FILES:
            return list(self._walk(_children_files))
        by_parent = _children_by_scan()
        return list(self._walk(lambda pid: by_parent.get(pid, [])))

    def _walk(self, children: ChildrenOf) -> Iterator[int]:
        seen: set[int] = set()
        todo = [self.root]
        while todo:  # bounded by the host's process count (seen guards against pid reuse loops)
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            yield pid
            todo += children(pid)

    def stats(self) -> list[Stat]:
        """One :class:`Stat` per live process of the tree."""
        return [st for pid in self.pids() if (st := read_stat(pid)) is not None]

    def sample(self) -> float:
        """CPU seconds (user + system) of the tree so far: live processes and reaped children."""
        return sum(st.total for st in self.stats())

    def describe(self) -> str:
        """``comm(pid)`` of each live process, e.g. ``netmon(123) python3(130)``."""
        return " ".join(f"{st.comm}({st.pid})" for st in self.stats())
