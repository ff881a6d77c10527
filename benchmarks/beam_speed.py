"""Batch inference on Apache Beam's DirectRunner against the single-process `predict_iter`, same photos, same run.

    python benchmarks/beam_speed.py ../shared/data --output runs/beam_speed [--count 1000] [--big 10000]

For cat and detect on `--count` photos: wall time of each as its own process (TensorFlow's import and the model's
load included in both), peak resident memory (VmHWM), and the records compared (probabilities within 1e-5, boxes
within 1e-4 px). Then the cat pipeline on `--big` photos: peak memory again (flat memory: about the same).
Writes `results.json`.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api_speed import make_folder  # noqa: E402

PREDICT_ITER = """
import json, sys
import dlapps
from dlapps.data.images import list_image_files
classes = {"cat": dlapps.CatClassifier, "detect": dlapps.ObjectDetector}
app = classes[sys.argv[1]].from_preset()
files, _ = list_image_files([sys.argv[2]])
with open(sys.argv[3], "w") as out:
    for result in app.predict_iter(files):
        out.write(json.dumps(result.to_dict()) + "\\n")
"""


def measured(command):
    """(seconds, peak RSS in MB) of a command, polling /proc for its high-water mark."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})  # fmt: skip
    peak = 0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak = max(peak, int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))))
        except (OSError, StopIteration):
            pass
        time.sleep(0.2)
    if process.returncode not in (0, 2):
        raise SystemExit(f"{command[:4]}... failed with {process.returncode}")
    return time.perf_counter() - start, round(peak / 1024)


def records(paths):
    found = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            record = json.loads(line)
            found[Path(record["path"]).name] = record
    return found


def compare(app, local, beam):
    """The largest difference between the two runs' records (probability, or box coordinate in pixels)."""
    assert set(local) == set(beam), f"{app}: different files answered"
    worst = 0.0
    for name, record in local.items():
        other = beam[name]
        if app == "cat":
            assert record["label"] == other["label"]
            worst = max(worst, abs(record["probability"] - other["probability"]))
        else:
            assert [d["class"] for d in record["detections"]] == [d["class"] for d in other["detections"]]
            for a, b in zip(record["detections"], other["detections"], strict=True):
                worst = max(worst, *(abs(x - y) for x, y in zip(a["box"], b["box"], strict=True)))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--big", type=int, default=10000)
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    folder = make_folder(args.data, args.output / f"photos_{args.count}", args.count)
    results = {"photos": args.count}
    for app in ("cat", "detect"):
        local_file = args.output / f"{app}_predict_iter.jsonl"
        local_seconds, local_mb = measured([sys.executable, "-c", PREDICT_ITER, app, str(folder), str(local_file)])
        prefix = args.output / f"{app}_beam"
        beam_seconds, beam_mb = measured([sys.executable, "-m", "dlapps", app, "predict", str(folder), "--runner",
                                          "direct", "--output", str(prefix)])  # fmt: skip
        worst = compare(app, records([local_file]), records(prefix.glob("records-*.jsonl")))
        results[app] = {"predict_iter_s": round(local_seconds, 1), "beam_direct_s": round(beam_seconds, 1),
                        "throughput_ratio": round(local_seconds / beam_seconds, 2), "predict_iter_peak_mb": local_mb,
                        "beam_peak_mb": beam_mb, "largest_difference": worst}  # fmt: skip
        print(app, results[app], flush=True)
    if args.big:
        big = make_folder(args.data, args.output / f"photos_{args.big}", args.big)
        seconds, peak = measured([sys.executable, "-m", "dlapps", "cat", "predict", str(big), "--runner", "direct",
                                  "--output", str(args.output / "cat_beam_big")])  # fmt: skip
        results["cat_big"] = {"photos": args.big, "beam_direct_s": round(seconds, 1), "beam_peak_mb": peak}
    (args.output / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
