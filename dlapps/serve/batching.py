"""Micro-batching: requests that arrive while the model is busy share its next call.

Written here because no well-kept library batches calls of an in-process TensorFlow function (TF Serving's batcher
needs its binary, Ray Serve's `@serve.batch` needs Ray). The rule is TF Serving's without its timer: a worker takes
the first waiting request and whatever else is already waiting (at most `max_batch`), so one client never waits for
company, and under load the batches grow by themselves.
"""

import collections
import queue
import threading
from concurrent.futures import Future


class MicroBatcher:
    """Calls `run_batch(items) -> results` (a list of the same length and order) on batches of concurrent calls.

    `batcher(item)` blocks until its result is ready and returns it, or raises what `run_batch` raised for its batch.

    Args:
        run_batch: the batched function (called from the worker threads only).
        max_batch: most items in one call (>= 1).
        workers: batches in flight at once (a second worker prepares its batch while the first computes).
        name: the worker threads' name (in logs).
    """

    def __init__(self, run_batch, max_batch=8, workers=1, name="batcher"):
        if max_batch < 1 or workers < 1:
            raise ValueError(f"max_batch and workers must be at least 1 (received {max_batch}, {workers})")
        self.run_batch, self.max_batch = run_batch, int(max_batch)
        self.waiting = queue.SimpleQueue()
        self.sizes = collections.deque(maxlen=10_000)  # the sizes of the latest batches run (bounded: a server runs on)
        for number in range(workers):
            threading.Thread(target=self._work, name=f"{name}-{number}", daemon=True).start()

    def __call__(self, item):
        future = Future()
        self.waiting.put((item, future))
        return future.result()

    def _work(self):
        while True:
            batch = [self.waiting.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.waiting.get_nowait())
                except queue.Empty:
                    break
            self.sizes.append(len(batch))
            try:
                results = self.run_batch([item for item, _ in batch])
            except Exception as error:  # every caller of this batch gets the error; the worker goes on
                for _, future in batch:
                    future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)
