"""Train the detector with its defaults and measure it on a held-out test split, timing the training.

    python benchmarks/detect_eval.py fruit ../shared/data/fruit_detection --output runs/bench_fruit
    python benchmarks/detect_eval.py raccoon ../shared/data/raccoon --output runs/bench_raccoon

fruit: `train/` and `test/` folders of VOC pairs. raccoon: `images/`, `annotations/` and the split in
`labels/train_labels.csv` / `labels/test_labels.csv`, linked here into `train/` and `test/` folders. The test split is
used once, after training (model selection uses the dev split `train` holds out). Writes `benchmark.json`.
"""

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path


def raccoon_split(data, output):
    """Symbolic links of the raccoon images and XML files into output/{train,test} by the data set's CSV split."""
    for split in ("train", "test"):
        folder = output / split
        folder.mkdir(parents=True, exist_ok=True)
        with open(data / "labels" / f"{split}_labels.csv") as file:
            names = sorted({row["filename"] for row in csv.DictReader(file)})
        for name in names:
            for source in (data / "images" / name, data / "annotations" / f"{Path(name).stem}.xml"):
                link = folder / source.name
                if not link.exists():
                    link.symlink_to(source.resolve())
    return output / "train", output / "test"


def run(command):
    print("$", " ".join(command), flush=True)
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if completed.returncode:
        sys.exit(f"failed ({completed.returncode}): {' '.join(command)}")
    return completed.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["fruit", "raccoon"])
    parser.add_argument("data", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--skip-train", action="store_true", help="evaluate the model already in OUTPUT/model")
    parser.add_argument("train_options", nargs="*", help="extra options for dlapps detect train (after --)")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    if args.dataset == "fruit":
        train, test = args.data / "train", args.data / "test"
    else:
        train, test = raccoon_split(args.data, args.output / "split")
    model = args.output / "model"
    result = {"dataset": args.dataset, "data": str(args.data)}
    if not args.skip_train:
        start = time.perf_counter()
        run(["dlapps", "detect", "train", str(train), "--output", str(model), "--json", *args.train_options])
        result["train_seconds"] = round(time.perf_counter() - start, 1)
        result["train"] = json.loads((model / "metrics.json").read_text())
    evaluated = run(["dlapps", "detect", "evaluate", str(test), "--model", str(model),
                     "--output", str(args.output / "test_evaluation"), "--json"])  # fmt: skip
    result["test"] = json.loads(evaluated)
    (args.output / "benchmark.json").write_text(json.dumps(result, indent=2))
    test = result["test"]
    print(f"{args.dataset}: test mAP@0.5 {test['map50']:.3f}, mAP@0.5:0.95 {test['map']:.3f}, "
          f"precision {test['precision']:.3f}, recall {test['recall']:.3f}"
          + (f"; trained in {result['train_seconds'] / 60:.1f} min" if "train_seconds" in result else ""))  # fmt: skip


if __name__ == "__main__":
    main()
