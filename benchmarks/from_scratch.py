"""The fine-tuner's from-scratch recipe (`--weights none`) on real folders: test accuracy and wall time.

Issue 7, part 6: alpaca test >= 0.75 and a ~10-class folder of about 1,500 images >= 0.95, each in <= 20 minutes on
this machine. Folders built here from data on this machine (written once under --output):

- `alpaca`: the course's Alpaca / Not-Alpaca folder as it is (327 images, 2 classes).
- `orl`: the 40 ORL people (AT&T Laboratories Cambridge), 10 92x112 grey photos each, written as PNG (400 images).
- `digits`: scikit-learn's bundled handwritten digits (UCI ML digits, 1,797 8x8 images, 10 classes; needs
  `pip install scikit-learn`, no download), written as PNG scaled to 0-255.

    python benchmarks/from_scratch.py ../shared/data --output runs/from_scratch [--only alpaca orl digits]

Each folder is trained by `dlapps finetune train FOLDER --weights none` with the recipe's defaults (the seeded
70/15/15 split; dev selects the epoch, test is measured once). Prints one JSON object per folder and writes
`from_scratch.json` under --output. Other options (e.g. `--image-size 96`) go to every train command.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from timing import timed_json_command  # benchmarks/timing.py, beside this script


def orl_folder(data, folder):
    """ORL's s1..s40 PGM files as person folders of PNG files."""
    import cv2

    for person in sorted((data / "orl_faces").glob("s*")):
        target = folder / person.name
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(person.glob("*.pgm")):
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(target / f"{path.stem}.png"), image)
    return folder


def digits_folder(folder):
    """scikit-learn's 8x8 digits (0-16) as 0-255 PNG files, one folder per digit."""
    import cv2
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        target = folder / str(label)
        target.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target / f"{index:04d}.png"), np.round(image * 255 / 16).astype(np.uint8))
    return folder


def train(folder, output, extra):
    command = [sys.executable, "-m", "dlapps", "finetune", "train", str(folder), "--output", str(output)]
    command += ["--weights", "none", "--overwrite", "--json", *extra]
    metrics, seconds = timed_json_command(command)
    keys = ("train_accuracy", "dev_accuracy", "test_accuracy", "test_examples", "phases")
    return {"seconds": round(seconds, 1), **{key: metrics[key] for key in keys}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the shared data folder (holds alpaca/ and orl_faces/)")
    parser.add_argument("--output", default="runs/from_scratch", help="folders built here and the runs")
    parser.add_argument("--only", nargs="+", default=["alpaca", "orl", "digits"], help="which folders to train")
    args, extra = parser.parse_known_args()  # other options go to every train command
    data, output = Path(args.data), Path(args.output)
    folders = {
        "alpaca": lambda: data / "alpaca",
        "orl": lambda: orl_folder(data, output / "folders" / "orl"),
        "digits": lambda: digits_folder(output / "folders" / "digits"),
    }
    results = {}
    for name in args.only:
        results[name] = train(folders[name](), output / name, extra)
        print(json.dumps({name: results[name]}), flush=True)
    (output / "from_scratch.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
