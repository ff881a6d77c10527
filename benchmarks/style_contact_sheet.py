"""A contact sheet, content x style, from both modes, through the command line a user runs:

    S=../shared/data/style
    python benchmarks/style_contact_sheet.py saved_models/style_transfer/* \
        --photos $S/content/tubingen.jpg $S/content/golden_gate.jpg --output benchmarks/style_contact_sheet.jpg

One row per photo: the photo, then for each fast model its one-pass result (`dlapps style predict --model`) and the
optimisation mode's result on the same style image (`dlapps style predict --style <the model's style image>
--optimizer lbfgs --steps N`, the TF tutorial's costs), all at `--max-size` pixels. Prints the seconds each took.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(command):
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dlapps", *command], capture_output=True, text=True)
    if result.returncode not in (0, None):
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def main():
    from dlapps.apps.style_transfer.app import load_style_model, style_image_path
    from dlapps.tasks.style_transformer import contact_sheet

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="fast style model folders")
    parser.add_argument("--photos", nargs="+", required=True, help="content photos")
    parser.add_argument("--max-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=80, help="L-BFGS function evaluations of the optimisation mode")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/style_contact_sheet.jpg"))
    args = parser.parse_args()
    size = ["--max-size", str(args.max_size)]
    seconds = {}
    with tempfile.TemporaryDirectory() as folder:
        columns = []
        # saved_models/style_transfer/* holds MODEL_CARD.md too
        for model_dir in [m for m in args.models if m.is_dir()]:
            _, config = load_style_model(model_dir)
            fast, slow = Path(folder) / f"{config['style']}_fast", Path(folder) / f"{config['style']}_optimised"
            seconds[f"{config['style']} fast"] = run(["style", "predict", *args.photos, "--model", str(model_dir),
                                                      "--output", str(fast), *size])  # fmt: skip
            seconds[f"{config['style']} optimised"] = run([
                "style", "predict", *args.photos, "--style", str(style_image_path(model_dir, config)),
                "--optimizer", "lbfgs", "--steps", str(args.steps), "--output", str(slow), *size,
            ])  # fmt: skip
            columns += [(fast, f"_{config['style']}.png"), (slow, "_stylised.png")]
        rows, labels = [], []
        for photo in args.photos:
            stem = Path(photo).stem
            original = Image.open(photo).convert("RGB")
            original.thumbnail((args.max_size, args.max_size), Image.LANCZOS)
            rows.append([np.asarray(original)] + [np.asarray(Image.open(c / f"{stem}{end}")) for c, end in columns])
            labels.append(f"{stem}: photo | " + " | ".join(c.name for c, _ in columns))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(rows, args.output, labels=labels, height=args.max_size)
    print(json.dumps({"output": str(args.output), "seconds": {k: round(v, 1) for k, v in seconds.items()}}, indent=2))


if __name__ == "__main__":
    main()
