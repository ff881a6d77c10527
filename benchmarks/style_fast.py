"""Fast style models against the optimisation mode, and their one-image latency as Keras, SavedModel and TFLite.

    python benchmarks/style_fast.py saved_models/style_transfer/* --photo ../shared/data/style/content/tubingen.jpg

For each model, on the photo centre-cropped to 512x512: the Keras latency (median of `--runs`), then the optimisation
mode (L-BFGS on the pixels from the photo, the same perceptual loss the model was trained with) until its style loss
is at or below the fast model's, timed; the ratio is the speed-up at a comparable style loss. SavedModel and TFLite
exports are timed on the same image and compared pixel by pixel with Keras. Writes `--output` (JSON) and a contact sheet
(photo, fast, optimised per model) beside it.
"""

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import median_ms  # benchmarks/timing.py, beside this script


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=1000, help="optimisation steps at most")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/style_fast.json"))
    args = parser.parse_args()

    import tensorflow as tf

    from dlapps.apps.style_transfer.app import _resized, load_style_model, style_image_path
    from dlapps.backbones.vgg import build_vgg16_features
    from dlapps.data.images import read_image
    from dlapps.tasks.neural_style import lbfgs_minimize
    from dlapps.tasks.style_transformer import PerceptualLoss, contact_sheet, stylise

    photo = read_image(args.photo)
    side = min(photo.shape[:2])
    top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
    square = tf.image.resize(photo[top : top + side, left : left + side], (args.size, args.size), antialias=True)
    image = np.clip(np.round(square.numpy()), 0, 255).astype(np.uint8)
    content = tf.constant(image[None], tf.float32)
    results, rows = {}, []
    for model_dir in [m for m in args.models if m.is_dir()]:  # saved_models/style_transfer/* holds MODEL_CARD.md too
        model, config = load_style_model(model_dir)
        network = build_vgg16_features([config["content_layer"], *config["style_layers"]], "hed")
        style = _resized(read_image(style_image_path(model_dir, config)), config["style_size"]) * 255.0
        loss = PerceptualLoss(network, style, config["content_weight"], config["style_weight"], config["tv_weight"],
                              config["content_layer"], config["style_layers"])  # fmt: skip
        fast = stylise(model, image[None])
        fast_values = [float(v) for v in loss(content, tf.cast(fast, tf.float32))]
        row = {"keras_ms": median_ms(lambda model=model: stylise(model, image[None]), args.runs),
               "fast": dict(zip(("total", "content", "style", "tv"), fast_values, strict=True))}  # fmt: skip

        # The optimisation mode's faster optimiser (L-BFGS on 0-1 pixels) on the same loss, stopped at the first
        # function evaluation whose style loss is at or below the fast model's.
        evaluations = {"count": 0, "style": float("inf"), "image": None}

        class Reached(Exception):
            pass

        def record(values, image, evaluations=evaluations, target=fast_values[2]):
            evaluations["count"] += 1
            evaluations["style"], evaluations["image"] = float(values[2]), image
            if evaluations["style"] <= target:
                raise Reached

        start = time.perf_counter()
        try:
            lbfgs_minimize(lambda pixels, loss=loss: loss(content, pixels * 255.0), content / 255.0, args.max_steps,
                           record=record)  # fmt: skip
        except Reached:
            pass
        seconds = time.perf_counter() - start
        steps, style_loss = evaluations["count"], evaluations["style"]
        row["optimisation"] = {"steps": steps, "seconds": seconds, "style": style_loss,
                               "reached": style_loss <= fast_values[2]}  # fmt: skip
        row["speedup"] = seconds / (row["keras_ms"] / 1000)
        with tempfile.TemporaryDirectory() as folder:
            for fmt, name in (("saved_model", "sm"), ("tflite", "style.tflite")):
                target = Path(folder) / name
                command = ["dlapps", "style", "export", "--model", str(model_dir), "--format", fmt, "--output",
                           str(target), "--image-size", str(args.size)]  # fmt: skip
                if subprocess.run(command, capture_output=True).returncode:
                    row[f"{fmt}_error"] = "export failed"
                    continue
                if fmt == "saved_model":
                    serve = tf.saved_model.load(str(target)).signatures["serve"]
                    call = lambda serve=serve: serve(images=tf.constant(image[None]))["images"].numpy()  # noqa: E731
                else:
                    interpreter = tf.lite.Interpreter(str(target))
                    runner = interpreter.get_signature_runner()
                    call = lambda runner=runner: runner(pixels=image[None])["images"]  # noqa: E731
                try:
                    out = call()
                except Exception as error:  # noqa: BLE001 (reported)
                    row[f"{fmt}_error"] = str(error).splitlines()[0]
                    continue
                row[f"{fmt}_ms"] = median_ms(call, args.runs)
                row[f"{fmt}_max_pixel_difference"] = int(np.max(np.abs(out.astype(int) - fast.numpy().astype(int))))
        results[config["style"]] = row
        optimised = np.clip(np.round(evaluations["image"].numpy()[0] * 255.0), 0, 255).astype(np.uint8)
        rows.append([image, fast.numpy()[0], optimised])
        print(config["style"], json.dumps(row), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    contact_sheet(rows, args.output.with_suffix(".jpg"), height=256)


if __name__ == "__main__":
    main()
