"""Timing shared by the benchmark scripts."""

import statistics
import time


def median_ms(function, repeats, warmup=1):
    """Median wall time of `function()` in milliseconds over `repeats` calls, after `warmup` warm-up calls."""
    for _ in range(warmup):
        function()  # Warm up (graph tracing, allocations).
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
