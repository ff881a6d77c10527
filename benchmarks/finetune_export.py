"""Exported fine-tuner models side by side: file size, one-image latency and dev accuracy, in one run.

Usage: python benchmarks/finetune_export.py --model-dir runs/alpaca [--repeats 30] [--json]

Exports the trained model as SavedModel, TFLite float32, TFLite int8 (calibrated on 100 training images) and ONNX,
then measures each on the run's own dev split (the seeded split `train` made; never the test split): accuracy,
agreement with the Keras model, and the median latency of one image (model time; decoding excluded).
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from timing import median_ms  # benchmarks/timing.py, beside this script

from dlapps.apps.fine_tuner.app import _load_run_config, read_splits
from dlapps.data.images import read_image
from dlapps.data.pipelines import resize_images
from dlapps.export import (
    OnnxClassifier,
    TFLiteClassifier,
    export_onnx,
    export_saved_model,
    export_tflite,
    path_size,
)
from dlapps.inference import load_model_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model, saved = load_model_dir(args.model_dir)
    config = _load_run_config(Path(args.model_dir))
    splits, _ = read_splits(saved["data"], config)
    size = tuple(model.input_shape[1:3])
    dev_images = np.stack([np.asarray(resize_images(read_image(f), size)) for f in splits["dev"][0]])
    dev_labels = np.asarray(splits["dev"][1])
    train_files = splits["train"][0]
    calibration = np.stack(
        [
            np.asarray(resize_images(read_image(train_files[i]), size))
            for i in np.random.default_rng(0).permutation(len(train_files))[:100]
        ]
    )
    keras_predictions = np.asarray(model.predict(dev_images, verbose=0)).argmax(axis=1)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        export_saved_model(model, folder / "serving", saved["class_names"])
        served = tf.saved_model.load(str(folder / "serving"))
        export_tflite(model, folder / "float.tflite")
        export_tflite(model, folder / "int8.tflite", "int8", calibration)
        export_onnx(model, folder / "model.onnx")
        keras_call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        runners = {
            "keras": (lambda x: keras_call(x).numpy(), Path(args.model_dir) / "model.keras"),
            "saved_model": (
                lambda x: served.serve(tf.constant(x.astype(np.uint8)))["probabilities"].numpy(),
                folder / "serving",
            ),
            "tflite_float": (TFLiteClassifier(folder / "float.tflite"), folder / "float.tflite"),
            "tflite_int8": (TFLiteClassifier(folder / "int8.tflite"), folder / "int8.tflite"),
            "onnx_runtime": (OnnxClassifier(folder / "model.onnx"), folder / "model.onnx"),
        }
        for name, (run, path) in runners.items():
            predictions = np.concatenate([run(dev_images[i : i + 1]) for i in range(len(dev_images))]).argmax(axis=1)
            results[name] = {
                "bytes": path_size(path),
                "one_image_ms": round(median_ms(lambda run=run: run(dev_images[:1]), args.repeats), 2),
                "dev_accuracy": float(np.mean(predictions == dev_labels)),
                "agreement_with_keras": float(np.mean(predictions == keras_predictions)),
            }
    results["int8_dev_accuracy_drop"] = results["keras"]["dev_accuracy"] - results["tflite_int8"]["dev_accuracy"]
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'format':14s} {'size MB':>8s} {'1 image ms':>11s} {'dev acc':>8s} {'agrees':>7s}")
    for name, row in results.items():
        if isinstance(row, dict):
            print(f"{name:14s} {row['bytes'] / 1e6:8.2f} {row['one_image_ms']:11.2f} {row['dev_accuracy']:8.3f} "
                  f"{row['agreement_with_keras']:7.1%}")  # fmt: skip
    print(f"int8 dev accuracy drop: {results['int8_dev_accuracy_drop']:+.3f}")


if __name__ == "__main__":
    main()
