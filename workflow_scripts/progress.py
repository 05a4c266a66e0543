"""Progress of a measurement that can take minutes (a cell's timed windows, a pair's rounds), as a few lines
on the console of the run: one when it starts, one every PROGRESS_INTERVAL_S while it runs, one when it ends.
A pass that is usually quick (the whole split for accuracy, the reference logits) prints only when it is not:
no start() line, its step() lines, and finish() only when one was shown.

The lines go to the `progress` logger: in a Snakemake job, step_io.setup_logging shows that logger on the
console as well as in the job's log (everything else a job logs stays in its log); on the command line it is
logged like any other line. Several jobs share one console, so every line names its cell in full.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from workflow_scripts.wording import count, plural

log = logging.getLogger("progress")
# Seconds between two lines while a measurement runs: a 30-window GPU cell (about 10 s) shows its start and end
# only; a CPU pair of bert-base at batch 8 (minutes) a line every half minute
PROGRESS_INTERVAL_S = 30.0
# A single call that usually returns at once (an eager first call) but may compile for minutes (max-autotune:
# 60-150 s on an H200) is named on the console once it has run this long, then every PROGRESS_INTERVAL_S
SLOW_CALL_S = 10.0


def cell_label(cell: dict) -> str:
    """`eager fp32 bs1 seq128 max_length`: every dimension of a cell (engine, precision, batch_size, seq_len,
    padding), as the report names cells."""
    return f"{cell['engine']} {cell['precision']} bs{cell['batch_size']} seq{cell['seq_len']} {cell['padding']}"


class Progress:
    """The lines of one measurement of `total` steps (windows, rounds), each one `unit` (singular: "window").

    name: what is measured, e.g. "bench eager fp32 bs1 seq128 max_length"; interval_s: at least this long
    between two lines while it runs; clock: seconds (default time.monotonic)."""

    def __init__(self, name: str, total: int, unit: str, interval_s: float = PROGRESS_INTERVAL_S,
                 clock: Callable[[], float] | None = None):
        self.name, self.total, self.unit, self.interval_s = name, total, unit, interval_s
        self.clock = clock or time.monotonic
        self.done = 0
        self.shown = False  # whether step() printed a line (a pass that needed one may close with finish())
        self.started = self.last_line = self.clock()

    def start(self, text: str) -> None:
        """The first line: what is about to be measured (and what loading or compiling took)."""
        log.info("%s: %s", self.name, text)
        self.started = self.last_line = self.clock()

    def step(self, so_far: Callable[[], str]) -> None:
        """One step done; a line `<done>/<total> <units>, <so_far()>` when interval_s has passed since the last
        line (so_far is called only then) and steps remain."""
        self.done += 1
        now = self.clock()
        if self.done < self.total and now - self.last_line >= self.interval_s:
            self.last_line, self.shown = now, True
            log.info("%s: %d/%d %s, %s", self.name, self.done, self.total, plural(self.total, self.unit), so_far())

    def finish(self, text: str) -> None:
        """The last line: the outcome, with the steps done and the seconds since start()."""
        log.info("%s: %s (%s in %.0f s)", self.name, text, count(self.done, self.unit), self.clock() - self.started)


def note(name: str, text: str) -> None:
    """One line `<name>: <text>` (a step of a job that is done: an engine loaded, a warm-up ended)."""
    log.info("%s: %s", name, text)


@contextlib.contextmanager
def while_slow(name: str, what: str, quiet_s: float | None = None, interval_s: float | None = None
               ) -> Iterator[None]:
    """Lines `<name>: <what>, running for N s` while the block runs longer than quiet_s (default SLOW_CALL_S):
    the first at quiet_s, then every interval_s (default PROGRESS_INTERVAL_S), from a timer thread (the block
    itself is one call that cannot report); nothing when the block is quicker. The thread ends with the
    block, also after an error."""
    quiet_s = SLOW_CALL_S if quiet_s is None else quiet_s
    interval_s = PROGRESS_INTERVAL_S if interval_s is None else interval_s
    done = threading.Event()
    started = time.monotonic()

    def report() -> None:
        wait = quiet_s
        while not done.wait(wait):
            log.info("%s: %s, running for %.0f s", name, what, time.monotonic() - started)
            wait = interval_s

    timer = threading.Thread(target=report, name=f"progress: {name}", daemon=True)
    timer.start()
    try:
        yield
    finally:
        done.set()
        timer.join()


def job_started(name: str, text: str) -> float:
    """The line `<name>: <text>` when a job that reports nothing on its way (a profile) starts; its start time
    (time.monotonic s) for job_ended."""
    log.info("%s: %s", name, text)
    return time.monotonic()


def job_ended(name: str, result: dict, started: float | None) -> None:
    """The line `<name>: <status> (<wall ms per iteration> | <reason's first line>) (N s)` of a finished
    profile result (kind profile: status, reason, profile.wall_ms_per_iter); without the seconds where the job
    never started (started None: skipped before any work, so this is its only line)."""
    profile = result.get("profile") or {}
    if result["reason"]:
        detail = f": {str(result['reason']).splitlines()[0]}"
    elif profile.get("wall_ms_per_iter") is not None:
        detail = f", {profile['wall_ms_per_iter']:.3f} ms per iteration"
    else:
        detail = ""
    took = "" if started is None else f" ({time.monotonic() - started:.0f} s)"
    log.info("%s: %s%s%s", name, result["status"], detail, took)
