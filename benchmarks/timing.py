"""Timing shared by the benchmark scripts."""

import json
import statistics
import subprocess
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


def timed_json_command(command):
    """Run a command that prints JSON on its last line (e.g. `dlapps ... --json`), timed from start to exit.

    Returns:
        (the parsed JSON object, wall seconds).

    Raises:
        SystemExit: with the end of the command's stderr when it fails.
    """
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1]), seconds
