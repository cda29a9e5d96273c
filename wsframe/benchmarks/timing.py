"""In-process timing: calibrated inner loops, warmup, several samples.

A benchmark is a *runner*: a callable ``run(n)`` that performs the operation
``n`` times (its own loop, so the per-call overhead of the harness is paid once
per sample, not once per operation). :func:`measure` calls it once to warm up,
grows ``n`` until one sample lasts at least ``target_s``, then takes several
samples with the garbage collector paused and reports the best (minimum) and
the median time per operation. Nothing here compares a time to a threshold.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Settings", "Timing", "measure"]

Runner = Callable[[int], object]


@dataclass(frozen=True)
class Settings:
    """How long and how often to sample one benchmark cell."""

    #: Minimum duration of one sample, in seconds.
    target_s: float = 0.02
    #: Number of samples taken after calibration.
    samples: int = 7
    #: Soft cap on the time spent sampling one cell; slow operations (pure
    #: Python on megabytes) get fewer samples, never fewer than one.
    budget_s: float = 1.5


FULL = Settings(target_s=0.025, samples=9, budget_s=2.0)
QUICK = Settings(target_s=0.01, samples=5, budget_s=0.4)


@dataclass
class Timing:
    """The result of :func:`measure`: nanoseconds per operation."""

    best_ns: float
    median_ns: float
    ops_per_sample: int
    samples_ns: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Every number, for the JSON report."""
        return {
            "ns_per_op_best": self.best_ns,
            "ns_per_op_median": self.median_ns,
            "ops_per_sample": self.ops_per_sample,
            "samples_ns_per_op": list(self.samples_ns),
        }


def _timed(run: Runner, n: int) -> float:
    """Seconds taken by ``run(n)``, with the garbage collector paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        run(n)
        elapsed = time.perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()
    return elapsed / 1e9


def measure(run: Runner, settings: Settings = FULL) -> Timing:
    """Time ``run``: warm up, calibrate the inner loop, then sample.

    Returns the best and median nanoseconds per operation over the samples.
    """
    gc.collect()
    started = time.perf_counter()
    # Warmup, and a first estimate of the cost of one operation.
    t = _timed(run, 1)
    n = 1
    # Calibrate: grow n until one sample lasts at least target_s.
    while t < settings.target_s:
        if t <= 0.0 or t < settings.target_s / 50:
            n *= 10
        else:
            n = max(n + 1, math.ceil(n * settings.target_s * 1.1 / t))
        t = _timed(run, n)
        if time.perf_counter() - started > settings.budget_s:
            break
    per_sample = max(t, 1e-9)
    remaining = settings.budget_s - (time.perf_counter() - started)
    count = max(1, min(settings.samples, int(remaining / per_sample)))
    samples = [t / n * 1e9]  # the last calibration run counts as a sample
    for _ in range(count - 1):
        samples.append(_timed(run, n) / n * 1e9)
    return Timing(
        best_ns=min(samples),
        median_ns=statistics.median(samples),
        ops_per_sample=n,
        samples_ns=samples,
    )
