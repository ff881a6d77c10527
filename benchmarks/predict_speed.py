"""Predict speed of a trained classifier: Keras model vs exported SavedModel vs TFLite, in one run.

Usage: python benchmarks/predict_speed.py --model-dir saved_models/cat_classifier [--repeats 50] [--json]

Model time only: images are decoded and resized beforehand (the SavedModel's `serve` includes its in-graph resize
of already-sized images). One-image latency is the median over repeats; throughput is for batches of 64.
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from timing import median_ms  # benchmarks/timing.py, beside this script

from dlapps.export import TFLiteClassifier, export_saved_model, export_tflite
from dlapps.inference import load_model_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="saved_models/cat_classifier")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model, config = load_model_dir(args.model_dir)
    size = tuple(model.input_shape[1:3])
    rng = np.random.default_rng(0)
    one = rng.integers(0, 255, (1, *size, 3)).astype(np.float32)
    batch = rng.integers(0, 255, (args.batch_size, *size, 3)).astype(np.float32)
    results = {
        "model_dir": args.model_dir,
        "image_size": list(size),
        "threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }

    keras_call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    results["keras_one_image_ms"] = median_ms(lambda: keras_call(one).numpy(), args.repeats)
    results["keras_batch_images_per_s"] = args.batch_size / (median_ms(lambda: keras_call(batch).numpy(), 10) / 1000)

    with tempfile.TemporaryDirectory() as folder:
        export_saved_model(model, Path(folder) / "serving", config.get("class_names", ["0", "1"]))
        served = tf.saved_model.load(str(Path(folder) / "serving"))
        one_u8, batch_u8 = tf.constant(one.astype(np.uint8)), tf.constant(batch.astype(np.uint8))
        results["saved_model_one_image_ms"] = median_ms(
            lambda: served.serve(one_u8)["probabilities"].numpy(), args.repeats
        )
        results["saved_model_batch_images_per_s"] = args.batch_size / (
            median_ms(lambda: served.serve(batch_u8)["probabilities"].numpy(), 10) / 1000
        )
        export_tflite(model, Path(folder) / "model.tflite")
        results["tflite_bytes"] = (Path(folder) / "model.tflite").stat().st_size
        lite = TFLiteClassifier(Path(folder) / "model.tflite")
        results["tflite_one_image_ms"] = median_ms(lambda: lite(one), args.repeats)
        results["tflite_batch_images_per_s"] = args.batch_size / (median_ms(lambda: lite(batch), 3) / 1000)
    results["keras_file_bytes"] = (Path(args.model_dir) / "model.keras").stat().st_size
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:34s} {value:.2f}" if isinstance(value, float) else f"{key:34s} {value}")


if __name__ == "__main__":
    main()
