"""`dlapps cat evaluate` (accuracy and the bias-variance readout on a labelled folder) and `dlapps cat export`."""

import json
import shutil
from pathlib import Path

import numpy as np

from dlapps.apps.cat_classifier.app import (
    APP,
    CLASS_NAMES,
    PROG,
    Split,
    _labels_and_probabilities,
    _readout_lines,
    bias_variance_readout,
    load_cat_model,
    read_cat_data,
)
from dlapps.cli.common import (
    EXIT_BAD_INPUT,
    default_output,
    emit,
    warn,
)
from dlapps.data.pipelines import finalize_dataset
from dlapps.data.readers import (
    DataError,
    find_catvnoncat_pair,
)
from dlapps.inference import predict_labelled_files
from dlapps.metrics.classification import binary_classification_metrics
from dlapps.plots import plot_confusion_matrix, plot_gallery, short_name


def _is_training_data(data, trained_on):
    """True when `data` is what the model was trained on (the same file or folder, or the train .h5 of its folder)."""
    if not trained_on:
        return False
    data, trained_on = Path(data).resolve(), Path(trained_on)
    if data == trained_on:
        return trained_on.is_file() or find_catvnoncat_pair(trained_on)[0] is None
    return trained_on.is_dir() and data.parent == trained_on and data.name.startswith("train")


def evaluate(args):
    model, config = load_cat_model(args.model_dir)
    threshold = config.get("threshold", 0.5) if args.threshold is None else args.threshold
    splits = read_cat_data(args.data, "test")
    split = splits.get("test") or splits.get("dev") or splits["train"]
    if _is_training_data(args.data, config.get("data")):
        warn(PROG, f"{args.data} is the data this model was trained on: these figures include its training images")
    skipped = []
    if split.images is not None:
        dataset = finalize_dataset(split.dataset(tuple(model.input_shape[1:3])), 64, False, cache=False)
        labels, probabilities = _labels_and_probabilities(model, dataset)
    else:
        # Image files: predict file by file so that an unreadable one is reported and the rest stay aligned.
        readable, labels, outputs = predict_labelled_files(
            model, split.files, split.labels.tolist(), 64,
            on_error=lambda path, error: (skipped.append(str(path)), warn(PROG, f"error: {error}")),
        )  # fmt: skip
        split = Split(labels, files=readable)
        probabilities = outputs[:, 0] if len(readable) else np.zeros(0)
    if not len(labels):
        raise DataError(f"{args.data}: no readable images to evaluate")
    metrics = binary_classification_metrics(labels, probabilities, threshold)

    trained = Path(args.model_dir) / "metrics.json"
    readout = None
    if trained.is_file():
        history = json.loads(trained.read_text())
        train_dev = history.get("train_dev_accuracy", history.get("dev_accuracy"))
        real_dev = history.get("dev_accuracy") if "dev_data" in history else None
        same_as_dev = real_dev is not None and Path(args.data).resolve() == Path(history["dev_data"])
        readout = bias_variance_readout(
            1 - history["train_accuracy"], 1 - train_dev, None if real_dev is None else 1 - real_dev,
            None if same_as_dev else 1 - metrics["accuracy"],
        )  # fmt: skip

    # Error analysis: a gallery of the misclassified images with their P(cat).
    report_dir = Path(args.output)
    report_dir.mkdir(parents=True, exist_ok=True)
    wrong = np.flatnonzero((probabilities >= threshold).astype(int) != labels)
    gallery = plot_gallery(
        [split.image(i) for i in wrong[:36]],
        [
            f"{short_name(split.name(i))}\ntruth: {CLASS_NAMES[labels[i]]}  P(cat)={probabilities[i]:.2f}"
            for i in wrong[:36]
        ],
        report_dir / "errors.png",
        f"Misclassified: {len(wrong)} of {len(labels)}",
    )
    plot_confusion_matrix(np.array(metrics["confusion_matrix"]), CLASS_NAMES, report_dir / "confusion_matrix.png")
    result = {**metrics, "bias_variance": readout, "error_gallery": str(gallery), "skipped": skipped,
              "output": str(report_dir), "files": ["confusion_matrix.png", "errors.png"]}  # fmt: skip
    matrix = metrics["confusion_matrix"]
    lines = [
        f"examples {metrics['num_examples']}  threshold {threshold:.2f}",
        f"accuracy {metrics['accuracy']:.3f}  precision {metrics['precision']:.3f}  recall {metrics['recall']:.3f}"
        f"  F1 {metrics['f1']:.3f}  ROC AUC {metrics['roc_auc']:.3f}",
        f"balanced accuracy {metrics['balanced_accuracy']:.3f} (the mean of the cat and non-cat recalls)",
        "confusion matrix (rows true, columns predicted: non-cat, cat)",
        f"  non-cat {matrix[0][0]:4d} {matrix[0][1]:4d}",
        f"  cat     {matrix[1][0]:4d} {matrix[1][1]:4d}",
    ]
    if readout:
        lines += _readout_lines(readout)
    lines.append(f"error gallery: {gallery}; confusion matrix: {report_dir / 'confusion_matrix.png'}")
    emit(args, result, "\n".join(lines))
    return EXIT_BAD_INPUT if skipped else None


def export(args):
    from dlapps.export import export_saved_model, export_tflite, path_size, write_model_info

    model, config = load_cat_model(args.model_dir)
    class_names = config.get("class_names", CLASS_NAMES)
    if args.format == "saved_model":
        output = Path(args.output or default_output(args.model_dir, "serving", APP))
        if output.exists():
            shutil.rmtree(output)
        export_saved_model(model, output, class_names, config.get("threshold", 0.5))
    else:
        output = Path(args.output or default_output(args.model_dir, "model.tflite", APP))
        output.parent.mkdir(parents=True, exist_ok=True)
        export_tflite(model, output)
        info = write_model_info(output, model, class_names)
    result = {"format": args.format, "path": str(output), "bytes": path_size(output)}
    text = f"wrote {output} ({result['bytes'] / 1e6:.1f} MB)"
    if args.format == "tflite":
        result["input"] = info["input"]
        text += f"; input: {info['input']['shape']} {info['input']['dtype']}, {info['input']['pixels']}"
    emit(args, result, text)
