"""The three style modes side by side on the dev photos: a contact sheet and one table of style and content losses.

    S=../shared/data/style
    python benchmarks/style_modes.py $S --output runs/style_modes [--optimise-photos 1] [--steps 100]

Rows: the dev photos (tubingen, golden_gate, hoovertowernight, louvre: held out of the fast models' training);
columns: six paintings. For every pair, the arbitrary network (one pass); the fast model where one was trained for
that painting; and, on the first `--optimise-photos` photos, the optimisation mode at its defaults but `--steps`
(Adam, 384 px; slow on 2 cores). The losses are measured alike for every picture, at 384 px on the optimisation
mode's own loss network (HED's VGG16; style: Gram matrices of block1-5_conv1, mean over layers; content:
block5_conv2 against the photo). Writes `contact_sheet.jpg` (photo, then painting by painting: arbitrary / fast /
optimised) and `losses.json`, and prints the table.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
DEV = ("tubingen", "golden_gate", "hoovertowernight", "louvre")
PAINTINGS = ("starry_night", "kandinsky", "hokusai-style", "the_scream", "shipwreck", "monet_800600")
FAST = {"starry_night": "starry_night", "kandinsky": "kandinsky", "hokusai-style": "great_wave"}
SIZE = 384


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("style_data", type=Path, help="../shared/data/style (content/ and style/)")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--optimise-photos", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--style-weight", type=float, default=None, help="the optimisation's (default: its own)")
    parser.add_argument("--photos", type=int, default=len(DEV), help="the first N dev photos only")
    args = parser.parse_args()
    import tensorflow as tf

    import dlapps
    from dlapps.backbones.vgg import build_vgg16_features
    from dlapps.cli.style import STYLE_LAYERS
    from dlapps.data.images import read_image
    from dlapps.losses.style import content_loss, gram_matrix, style_loss

    network = build_vgg16_features(["block5_conv2", *STYLE_LAYERS])

    def features(image):
        return network(tf.constant(np.asarray(image, np.float32)[None]))

    def losses(result, photo, painting_grams):
        got = features(result)
        style = float(np.mean([style_loss(painting_grams[name], got[name]) for name in STYLE_LAYERS]))
        return {"style": style, "content": float(content_loss(features(photo)["block5_conv2"], got["block5_conv2"]))}

    def fit(image):
        picture = Image.fromarray(image)
        picture.thumbnail((SIZE, SIZE), Image.LANCZOS)
        return np.asarray(picture)

    args.output.mkdir(parents=True, exist_ok=True)
    arbitrary = dlapps.StyleTransfer.arbitrary(max_size=SIZE)
    fast = {name: dlapps.StyleTransfer.from_preset(preset, max_size=SIZE) for name, preset in FAST.items()}
    rows, table = [], []
    for row, stem in enumerate(DEV[: args.photos]):
        photo = fit(read_image(args.style_data / "content" / f"{stem}.jpg"))
        cells = [photo]
        for name in PAINTINGS:
            painting = read_image(args.style_data / "style" / f"{name}.jpg")
            grams = {k: gram_matrix(v) for k, v in features(fit(painting)).items() if k in STYLE_LAYERS}
            results = {}
            start = time.perf_counter()
            results["arbitrary"] = (arbitrary.stylise(photo, style=painting).image, time.perf_counter() - start)
            if name in fast:
                start = time.perf_counter()
                results["fast"] = (fast[name].stylise(photo).image, time.perf_counter() - start)
            if row < args.optimise_photos:
                start = time.perf_counter()
                weight = {} if args.style_weight is None else {"style_weight": args.style_weight}
                optimised = dlapps.StyleTransfer.optimise(photo, painting, steps=args.steps, max_size=SIZE, **weight)
                results["optimise"] = (optimised.image, time.perf_counter() - start)
            for mode, (image, seconds) in results.items():
                table.append({"photo": stem, "painting": name, "mode": mode, "seconds": round(seconds, 2),
                              **losses(image, photo, grams)})  # fmt: skip
                print(table[-1], flush=True)
            blank = np.full_like(photo, 255)
            cells += [results.get(mode, (blank, 0))[0] for mode in ("arbitrary", "fast", "optimise")]
        rows.append(cells)
    height = 160
    scaled = [[Image.fromarray(c).resize((max(1, round(c.shape[1] * height / c.shape[0])), height)) for c in row]
              for row in rows]  # fmt: skip
    sheet = Image.new("RGB", (max(sum(c.width for c in row) for row in scaled), height * len(rows)), "white")
    for index, row in enumerate(scaled):
        x = 0
        for cell in row:
            sheet.paste(cell, (x, index * height))
            x += cell.width
    sheet.save(args.output / "contact_sheet.jpg", quality=88)
    summary = {}
    for mode in ("arbitrary", "fast", "optimise"):
        chosen = [r for r in table if r["mode"] == mode]
        if chosen:
            summary[mode] = {key: float(np.mean([r[key] for r in chosen])) for key in ("style", "content", "seconds")}
            summary[mode]["pictures"] = len(chosen)
    (args.output / "losses.json").write_text(json.dumps({"per_picture": table, "mean": summary}, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
