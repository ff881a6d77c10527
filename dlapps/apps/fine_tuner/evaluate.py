"""`dlapps finetune evaluate` (metrics, confusion matrix, the misclassified gallery) and `dlapps finetune export`."""

import shutil
from pathlib import Path

import numpy as np

from dlapps.apps.fine_tuner.app import APP, PROG, _load_run_config, read_splits
from dlapps.cli.common import (
    EXIT_BAD_INPUT,
    default_output,
    emit,
    warn,
)
from dlapps.data.images import list_image_files, read_image
from dlapps.data.readers import (
    DataError,
    find_split_folders,
    read_image_folder,
)
from dlapps.inference import (
    load_model_dir,
    predict_labelled_files,
)
from dlapps.metrics.classification import multiclass_metrics
from dlapps.plots import plot_confusion_matrix, plot_gallery, short_name


def _relative(path, folder):
    """A file's path below the evaluated folder (class/album/name.jpg), to find it from a caption; else its name."""
    try:  # absolute, not resolved: a symlinked class folder keeps its name
        return str(Path(path).absolute().relative_to(Path(folder).absolute()))
    except ValueError:
        return Path(path).name


def evaluate(args):
    model, config = load_model_dir(args.model_dir, APP)
    class_names = config["class_names"]
    from dlapps.export import exported_class_names, exported_probabilities

    for path in args.exported:  # checked before the evaluation, not after it
        names = exported_class_names(path)
        if names is not None and names != list(class_names):
            raise ValueError(f"--exported {path}: its classes {names} are not the model's {list(class_names)}")
    data = Path(args.data)
    folders = find_split_folders(data) if data.is_dir() else {}
    folder = data
    if folders:  # a folder of splits: its test split, else its dev split (said so)
        folder = folders.get("test") or folders.get("dev") or folders["train"]
        if "test" not in folders:
            warn(PROG, f"{data} has no test/ folder: evaluating on {folder.name}/")
    files, labels, _, non_images = read_image_folder(folder, class_names)
    for path in non_images:
        warn(PROG, f"skipping non-image file {path}")
    if config.get("data") and not folders and Path(folder).resolve() == Path(config["data"]).resolve():
        warn(PROG, f"{folder} is the folder this model was trained on: these figures include its training images "
                   "(the held-out test accuracy is in metrics.json)")  # fmt: skip
    image_size = tuple(model.input_shape[1:3])
    failed = []
    readable, labels, probabilities = predict_labelled_files(
        model, files, labels, 32,
        on_error=lambda path, error: (failed.append(str(path)), warn(PROG, f"error: {error}")),
    )  # fmt: skip
    if not readable:
        raise DataError(f"{folder}: no readable images to evaluate")
    metrics = multiclass_metrics(labels, probabilities, class_names)
    report_dir = Path(args.output)
    report_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion_matrix(np.array(metrics["confusion_matrix"]), class_names, report_dir / "confusion_matrix.png")
    # The worst mistakes: wrong predictions made with the highest confidence.
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:24]
    plot_gallery(
        [read_image(readable[i]) for i in wrong],
        [f"{short_name(_relative(readable[i], folder), 30)}\ntruth {class_names[labels[i]]}, "
         f"said {class_names[predicted[i]]} {probabilities[i, predicted[i]]:.2f}" for i in wrong],
        report_dir / "worst_mistakes.png",
        f"Worst mistakes: {len(np.flatnonzero(predicted != labels))} of {len(labels)} wrong",
    )  # fmt: skip
    result = {"data": str(folder), **metrics, "exported": {}, "skipped": failed, "output": str(report_dir),
              "files": ["confusion_matrix.png", "worst_mistakes.png"]}  # fmt: skip
    for path in args.exported:
        exported, used = exported_probabilities(
            path, readable, image_size,
            on_skip=lambda f, path=path: warn(PROG, f"{path}: skipping {f}: its format cannot be decoded inside an "
                                                    "exported graph (JPEG, PNG, GIF, BMP)"),
        )  # fmt: skip
        if not used.any():
            result["exported"][str(path)] = {"examples": 0, "skipped": len(used)}
            continue
        result["exported"][str(path)] = {
            "examples": int(used.sum()),
            "skipped": int((~used).sum()),
            "accuracy": float(np.mean(exported.argmax(axis=1) == labels[used])),
            "agreement_with_keras": float(np.mean(exported.argmax(axis=1) == predicted[used])),
            "max_probability_difference": float(np.max(np.abs(exported - probabilities[used]))),
        }
    summary = f"accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}"
    lines = [f"{folder}: {metrics['num_examples']} images, {summary}"]
    for name, values in metrics["per_class"].items():
        lines.append(f"  {name:20s} precision {values['precision']:.3f} recall {values['recall']:.3f} "
                     f"F1 {values['f1']:.3f} ({values['support']} images)")  # fmt: skip
    for path, values in result["exported"].items():
        if not values["examples"]:
            lines.append(f"  exported {path}: no image in a format it decodes")
            continue
        lines.append(f"  exported {path}: accuracy {values['accuracy']:.3f} on {values['examples']} images, "
                     f"agrees with Keras on {values['agreement_with_keras']:.1%}")  # fmt: skip
    lines.append(f"plots: {report_dir / 'confusion_matrix.png'}, {report_dir / 'worst_mistakes.png'}")
    emit(args, result, "\n".join(lines))
    return EXIT_BAD_INPUT if failed else None


def export(args):
    from dlapps.export import (
        calibration_images,
        export_onnx,
        export_saved_model,
        export_tflite,
        path_size,
        write_model_info,
    )

    model, config = load_model_dir(args.model_dir, APP)
    model_dir = Path(args.model_dir)
    names = {
        "saved_model": "serving",
        "tflite": "model.tflite",
        "tflite_int8": "model_int8.tflite",
        "onnx": "model.onnx",
    }
    output = Path(args.output or default_output(model_dir, names[args.format], APP))
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "saved_model":
        if output.exists():
            shutil.rmtree(output)
        export_saved_model(model, output, config["class_names"])
    elif args.format == "tflite":
        export_tflite(model, output)
    elif args.format == "tflite_int8":
        if args.data:
            files, _ = list_image_files([args.data])
        elif config.get("data"):
            # The run's own training split (the seeded split train made), never its dev or test images.
            files = read_splits(config["data"], _load_run_config(model_dir))[0]["train"][0]
        else:
            raise ValueError("tflite_int8 needs calibration images: pass --data FOLDER (training pictures)")
        if not files:
            raise ValueError("tflite_int8: no calibration images found")
        images, unreadable = calibration_images(files, tuple(model.input_shape[1:3]))
        for error in unreadable:
            warn(PROG, f"calibration: skipping {error}")
        export_tflite(model, output, "int8", images)
    else:
        export_onnx(model, output)
    result = {"format": args.format, "path": str(output), "bytes": path_size(output)}
    text = f"wrote {output} ({result['bytes'] / 1e6:.1f} MB)"
    if args.format != "saved_model":
        info = write_model_info(output, model, config["class_names"], "int8" if "int8" in args.format else "float")
        result["input"] = info["input"]
        text += (
            f"; input: {info['input']['shape']} {info['input']['dtype']}, {info['input']['pixels']}; see {output}.json"
        )
    emit(args, result, text)
