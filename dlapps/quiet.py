"""Silence what C++ libraries (TensorFlow start-up, TFLite's delegate and converter) write straight to stderr.

Their lines ignore TF_CPP_MIN_LOG_LEVEL and Python's warnings filters; only redirecting file descriptor 2 keeps them
out of a command's output. Python's own messages written while it is active are lost too, so keep it short.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_native_stderr(enabled=True):
    """Redirect file descriptor 2 to /dev/null inside the block (a no-op when `enabled` is False)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
