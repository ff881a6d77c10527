"""The Python API's overhead, measured: single-image latency of each app class against its own exported SavedModel
called directly (same pixels, same process, same run), and `predict_iter` over a folder against the command line.

    python benchmarks/api_speed.py ../shared/data --output runs/api_speed [--baseline /path/to/old/checkout]

`--baseline` names a checkout of an earlier version whose command line (`python -m apps` there) is timed on the
same folder too. Prints a table and writes `results.json`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def median_ms(function, repeats):
    function()  # warm-up: traces, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def make_folder(data_root, folder, count):
    """`count` photos from the shared data (cats, dogs, fruit, raccoons, alpacas), linked under unique names."""
    sources = sorted(p for sub in ("cat_photos", "fruit_detection", "raccoon", "alpaca")
                     for p in (data_root / sub).rglob("*.jpg"))  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        link = folder / f"img_{index:05d}.jpg"
        if not link.exists():
            link.symlink_to(sources[index % len(sources)].resolve())
    return folder


def latency(app, name, pixels, output, repeats):
    """(API ms, SavedModel ms) for one image; the SavedModel exported by the app itself."""
    import tensorflow as tf

    export = output / f"{name}_serving"
    if not export.exists():
        app.export("saved_model", output=str(export))
    served = tf.saved_model.load(str(export))
    batch = tf.constant(pixels[None])
    if name == "faces":
        from dlapps.data.faces import face_chips

        def direct():  # the same detection and alignment, then the exported network on the chip
            chips = face_chips(pixels)
            return served.serve(tf.constant(np.stack([c for _, c in chips])))

        api = median_ms(lambda: app.predict(pixels), repeats)
    else:
        serve = served.signatures["serve"]  # every app's export has this signature: uint8 images in
        (input_name,) = serve.structured_input_signature[1]

        def direct():
            return serve(**{input_name: batch})

        api = median_ms(lambda: app.predict(pixels), repeats)
    return api, median_ms(direct, repeats)


def command_line_seconds(argv, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 2):
        raise RuntimeError(result.stderr[-2000:])
    return elapsed, [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_root", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--output", type=Path, default=Path("runs/api_speed"))
    parser.add_argument("--images", type=int, default=1000, help="photos in the predict_iter folder")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per latency figure (median)")
    parser.add_argument("--baseline", type=Path, default=None, help="an earlier checkout (its `python -m apps`)")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    import dlapps
    from dlapps.data.images import read_image

    root = Path(__file__).resolve().parent.parent
    photo = read_image(root / "examples" / "raccoons.jpg")
    face = read_image(root / "examples" / "astronaut.png")
    apps = {
        "cat": (dlapps.CatClassifier.from_preset("cat"), photo),
        "detect": (dlapps.ObjectDetector.from_preset("raccoon"), photo),
        "faces": (dlapps.FaceVerifier.from_preset("dlib"), face),
        "style": (dlapps.StyleTransfer.from_preset("starry_night"), photo),
    }
    results = {"latency_ms": {}, "folder": {}}
    print(f"{'app':8s} {'API ms':>9s} {'SavedModel ms':>14s} {'ratio':>6s}")
    for name, (app, pixels) in apps.items():
        api, direct = latency(app, name, pixels, args.output, args.repeats)
        results["latency_ms"][name] = {"api": api, "saved_model": direct, "ratio": api / direct}
        print(f"{name:8s} {api:9.1f} {direct:14.1f} {api / direct:6.2f}", flush=True)

    folder = make_folder(args.data_root.resolve(), args.output.resolve() / "photos", args.images)
    print(f"\n{args.images} photos: {'predict_iter s':>15s} {'dlapps predict s':>17s} {'baseline s':>11s}")
    for name, preset, option in (("cat", "cat", "--model-dir"), ("detect", "raccoon", "--model")):
        app = apps[name][0]
        start = time.perf_counter()
        records = [r.to_dict() for r in app.predict_iter(folder)]
        api = time.perf_counter() - start
        extra = ["--no-images", "--output", str(args.output.resolve() / "detect_out")] if name == "detect" else []
        cli, printed = command_line_seconds(["-m", "dlapps", name, "predict", str(folder), option, preset, "--json",
                                             *extra], root)  # fmt: skip
        same = all(a == b for a, b in zip(records, printed, strict=True))
        baseline = None
        if args.baseline:
            old_model = {"cat": "saved_models/cat_classifier", "detect": "saved_models/raccoon_detector"}[name]
            baseline, _ = command_line_seconds(["-m", "apps", name, "predict", str(folder), option, old_model,
                                                "--json", *extra], args.baseline)  # fmt: skip
        results["folder"][name] = {"predict_iter_s": api, "cli_s": cli, "baseline_cli_s": baseline,
                                   "records_equal_cli": same, "images": len(records)}  # fmt: skip
        text = f"{baseline:11.1f}" if baseline else f"{'-':>11s}"
        print(f"{name:8s}  {api:15.1f} {cli:17.1f} {text}  (API records == CLI records: {same})", flush=True)
    (args.output / "results.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.output / 'results.json'}")


if __name__ == "__main__":
    main()
