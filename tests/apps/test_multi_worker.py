"""Two worker processes on 127.0.0.1 train with MultiWorkerMirroredStrategy and end with the same weights."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

from tests.helpers import write_lite0_weights, write_tiny_image_folder


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_finish_with_identical_weights(tmp_path):
    """Both phases of fine-tuning, with a (stand-in) pretrained base whose batch norm stays frozen.

    Every weight must match, moving statistics included. (Training from scratch updates batch-norm moving averages
    on each worker's own batches, so those, and only those, differ between workers in that mode.)
    """
    import keras

    weights = write_lite0_weights(tmp_path / "lite0.weights.h5")
    folder = write_tiny_image_folder(tmp_path / "pictures", {"a": 8, "b": 8})
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
        )
        command = [
            sys.executable, "-m", "dlapps", "finetune", "train", str(folder),
            "--output", str(tmp_path / f"worker{index}"),
            "--strategy", "multi_worker", "--weights", str(weights), "--image-size", "32", "--batch-size", "8",
            "--head-epochs", "2", "--fine-tune-epochs", "1", "--json",
        ]  # fmt: skip
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [process.communicate(timeout=600) for process in processes]
    for process, (_, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err[-2000:]
    models = [keras.saving.load_model(tmp_path / f"worker{i}" / "model.keras", compile=False) for i in range(2)]
    first, second = (m.get_weights() for m in models)
    assert len(first) == len(second) > 0
    for a, b in zip(first, second, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert json.loads(results[0][0].splitlines()[-1])["unfrozen_from"]["index"] > 0  # Phase 2 ran too.
