"""The garbage collector set for long-running netmon processes.

The server (``netmon run``/``serve``) and its poller process call :func:`tune` and
:func:`settle`; ``netmon poll`` calls :func:`tune` only (its inventory arrives after the start,
over its heartbeat, so there is no start-up heap worth freezing).

Why
    CPython's cyclic collector runs after every 700 net allocations of container objects and
    now and then walks the whole heap. A monitor's heap is large and long-lived (inventory,
    per-device evidence windows, results on their way to the store), and is freed by reference
    counting: it holds almost no reference cycles. Measured at 20,000 devices with ``netmon
    run`` scraped every 15 s (``bench/underload.py``, collections timed with ``gc.callbacks``),
    the collector took 18 % of the server's CPU and 9 % of the poller's, and in 200 s it found
    about 4,000 objects that were garbage, out of ~600,000 it kept walking.

What
    :func:`tune` (at a process's start): the youngest generation is collected after
    :data:`YOUNG` allocations instead of 700, and the older ones after more of those
    (:data:`THRESHOLDS`). :func:`settle` (once the start-up is done: inventory loaded, history
    refilled, engines open): collect once, then ``gc.freeze()`` what is there, so no later
    collection walks it. Frozen objects are still freed by reference counting; a reference
    cycle among them that dies later is never collected (a restarted poller process's link
    objects, once, at most: asyncio breaks most such cycles when it closes them).

Cost
    Cyclic garbage (e.g. an exception's traceback) waits up to :data:`YOUNG` allocations to be
    collected: a few MB at most. The full collection at :func:`settle` pauses the process once,
    as long as one of the full collections it saves (0.2-0.4 s each at 20,000 devices, timed in
    the same runs); no echo is lost to it: replies are timed by the kernel
    (``probes.icmp_engine``), probe deadlines by loop time (``probes.stall``).
"""

from __future__ import annotations

import gc

YOUNG = 50_000  # allocations between collections of the youngest generation (CPython: 700)
THRESHOLDS = (YOUNG, 20, 100)  # gc.set_threshold: young, then collections per older one


def tune() -> None:
    """Collect less often (see the module docstring); at a process's start."""
    gc.set_threshold(*THRESHOLDS)


def settle() -> None:
    """Collect the start-up's garbage, then freeze what is left: it is long-lived."""
    gc.collect()
    gc.freeze()
