"""The cat classifier, in the order of a keras-io example: data, model, train, evaluate, predict, export."""

import json
import shutil
from pathlib import Path

import keras
import numpy as np

from dlapps.apps.cat_classifier.config import CatConfig
from dlapps.cli.common import (
    EXIT_BAD_INPUT,
    check_output_folder,
    default_output,
    emit,
    keras_verbosity,
    readable_files,
    to_json,
    warn,
)
from dlapps.data.images import read_image
from dlapps.data.pipelines import build_augmentation, finalize_dataset, make_array_dataset, make_file_dataset
from dlapps.data.readers import (
    DataError,
    check_class_counts,
    find_catvnoncat_pair,
    find_split_folders,
    read_catvnoncat_h5,
    read_image_folder,
    stratified_split,
)
from dlapps.inference import dataset_outputs, load_model_dir, predict_labelled_files
from dlapps.metrics.classification import binary_classification_metrics
from dlapps.plots import plot_confusion_matrix, plot_gallery, plot_history, short_name
from dlapps.tasks.image_classifier import build_image_classifier
from dlapps.training import fit_notices_silenced, make_callbacks, make_learning_rate, make_optimizer

CLASS_NAMES = ["non-cat", "cat"]
PROG = "dlapps cat"
APP = "cat"


# === Data ===


class Split:
    """One split of the data: in-memory images (h5) or image files (folders), with 0/1 labels."""

    def __init__(self, labels, images=None, files=None):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.images, self.files = images, files

    def subset(self, indices):
        return Split(
            self.labels[indices],
            images=None if self.images is None else self.images[indices],
            files=None if self.files is None else [self.files[i] for i in indices],
        )

    def dataset(self, image_size, skipped=None):
        if self.images is not None:
            return make_array_dataset(self.images, self.labels, image_size)
        return make_file_dataset(self.files, self.labels, image_size, skipped)

    def image(self, index):
        return self.images[index] if self.images is not None else read_image(self.files[index])

    def name(self, index):
        return f"#{index}" if self.images is not None else Path(self.files[index]).name

    def __len__(self):
        return len(self.labels)


def read_cat_data(path, role):
    """Read a data path for `role` 'train' or 'test' and return {split name: Split}.

    For training: the catvnoncat folder (its train file), a train .h5 file, an image folder with cat/ and non-cat/,
    or a folder with train/ and val/ splits. For testing: the test .h5, the catvnoncat folder (its test file), or
    an image folder.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        train_file, test_file = find_catvnoncat_pair(path)
        if train_file is not None:
            chosen = train_file if role == "train" else test_file
            if chosen is None:
                raise DataError(f"{path}: holds no test*.h5 file to evaluate on")
            return read_cat_data(chosen, role)
        splits = find_split_folders(path)
        if splits:
            return {name: _read_cat_folder(folder, role == "train") for name, folder in splits.items()}
        return {role: _read_cat_folder(path, role == "train")}
    if path.suffix.lower() in (".h5", ".hdf5"):
        images, labels, class_names = read_catvnoncat_h5(path)
        if set(np.unique(labels)) - {0, 1}:
            raise DataError(f"{path}: labels must be 0 (non-cat) or 1 (cat). Received: {sorted(np.unique(labels))}")
        return {role: Split(labels, images=images)}
    raise DataError(f"{path}: expected a .h5 file or a folder (catvnoncat, or cat/ and non-cat/ subfolders)")


def _read_cat_folder(folder, check=True):
    """A cat/ and non-cat/ folder; with `check`, every file is decoded first and each unreadable one named."""
    files, labels, _, skipped = read_image_folder(folder, class_names=CLASS_NAMES)
    for path in skipped:
        warn(PROG, f"skipping non-image file {path}")
    if check:
        files, labels = readable_files(PROG, files, labels)
    return Split(labels, files=files)


def _check_two_classes(split, path, minimum=2):
    """Both classes, each with enough images for the train / train-dev split (refused up front, not after training)."""
    present = sorted(set(split.labels.tolist()))
    if present != [0, 1]:
        only = CLASS_NAMES[present[0]] if present else "nothing"
        raise DataError(f"{path}: training needs both cat and non-cat examples; found only {only}")
    check_class_counts(split.labels, CLASS_NAMES, minimum, path)


# === Model and training ===


def _config_from_args(args):
    return CatConfig(
        model=args.model,
        image_size=(args.image_size, args.image_size),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        optimizer=args.optimizer,
        lr_decay=args.lr_decay,
        l2=args.l2,
        dropout=args.dropout,
        batch_norm=args.batch_norm,
        hidden_units=tuple(args.hidden_units),
        filters=tuple(args.filters),
        augment=args.augment,
        patience=args.patience,
        dev_fraction=args.dev_fraction,
        seed=args.seed,
        weights=args.weights,
        backbone_image_size=args.backbone_image_size,
        imagenet_veto=args.imagenet_veto,
    )


def _resolve_weights(weights):
    if weights in (None, "none", "None"):
        return None
    if weights != "imagenet" and not Path(weights).exists():
        raise DataError(f"--weights: no such file {weights} (use 'imagenet', 'none' or a weights file)")
    return weights


def build_cat_model(config):
    """The classifier of a config, compiled for binary cross-entropy."""
    model = build_image_classifier(
        config.model,
        image_size=config.image_size,
        num_classes=2,
        hidden_units=config.hidden_units,
        filters=config.filters,
        l2=config.l2,
        dropout=config.dropout,
        batch_norm=config.batch_norm,
        weights=_resolve_weights(config.weights) if config.model in ("transfer", "imagenet") else None,
        backbone_image_size=(config.backbone_image_size,) * 2,
    )
    if config.model == "transfer":
        # Phase one of transfer learning: only the new head learns; the pretrained base stays frozen.
        model.get_layer("efficientnet_lite0").trainable = False
    return model


def with_imagenet_veto(trained, config):
    """The trained transfer model, deployed: its head and base at the backbone's own size, with the ImageNet veto.

    The head learns from the training images alone (at their own size, upsampled in the graph); the deployed model
    takes photos at the size the backbone sees (more detail than the 64x64 training images) and scales P(cat) by
    1 - P(dog) under the backbone's ImageNet head (`ImageNetVeto`). Both choices were made on the cat_photos dev set.
    """
    size = (config.backbone_image_size,) * 2
    deployed = build_image_classifier(
        "transfer", image_size=size, num_classes=2, dropout=config.dropout, l2=config.l2,
        weights=_resolve_weights(config.weights), backbone_image_size=size, imagenet_veto=config.imagenet_veto,
    )  # fmt: skip
    deployed.get_layer("predictions").set_weights(trained.get_layer("predictions").get_weights())
    trained_base = trained.get_layer("efficientnet_lite0")
    deployed_base = deployed.get_layer("efficientnet_lite0")
    for layer in trained_base.layers:
        if layer.weights:
            deployed_base.get_layer(layer.name).set_weights(layer.get_weights())
    deployed.get_layer("efficientnet_lite0").trainable = False
    config.image_size = size
    return deployed


def _labels_and_probabilities(model, dataset):
    """Labels and P(cat) over a dataset."""
    labels, outputs = dataset_outputs(model, dataset)
    return labels, outputs[:, 0] if outputs.ndim == 2 else outputs


def _accuracy(model, dataset):
    labels, probabilities = _labels_and_probabilities(model, dataset)
    return binary_classification_metrics(labels, probabilities)["accuracy"], len(labels)


def train(args):
    config = _config_from_args(args)
    output = check_output_folder(args.output)
    if (output / "model.keras").exists() and not args.overwrite:
        raise FileExistsError(
            f"{output} already holds a model; pass --overwrite to replace it, or pick another --output"
        )
    keras.utils.set_random_seed(config.seed)

    # Data: a seeded, stratified train / train-dev split unless the folder already has one.
    splits = read_cat_data(args.data, "train")
    _check_two_classes(splits["train"], args.data, minimum=1 if "dev" in splits else 2)
    if "dev" not in splits:
        train_indices, dev_indices = stratified_split(splits["train"].labels, (config.dev_fraction,), config.seed)
        splits = {"train": splits["train"].subset(train_indices), "dev": splits["train"].subset(dev_indices)}
    real_dev = _read_cat_folder(args.dev) if args.dev else None
    counts = {name: np.bincount(split.labels, minlength=2).tolist() for name, split in splits.items()}
    if real_dev is not None:
        counts["dev (--dev)"] = np.bincount(real_dev.labels, minlength=2).tolist()
    if not args.json:
        rows = [f"  {name:12s} non-cat {c[0]:5d}  cat {c[1]:5d}" for name, c in counts.items()]
        print("images per split (the held-out 'dev' split is the course's train-dev set):\n" + "\n".join(rows))
    skipped = []
    augmentation = build_augmentation(config.image_size, seed=config.seed) if config.augment else None
    train_data = finalize_dataset(
        splits["train"].dataset(config.image_size, skipped), config.batch_size, True, augmentation, config.seed
    )
    eval_train = finalize_dataset(splits["train"].dataset(config.image_size), config.batch_size, False)
    dev_data = finalize_dataset(splits["dev"].dataset(config.image_size, skipped), config.batch_size, False)

    # Model.
    model = build_cat_model(config)
    output.mkdir(parents=True, exist_ok=True)  # Only now: a bad path or unavailable weights leave nothing behind.
    if config.model != "imagenet":
        steps = int(np.ceil(len(splits["train"]) / config.batch_size))
        learning_rate = make_learning_rate(config.learning_rate, config.lr_decay, steps, config.epochs)
        model.compile(
            optimizer=make_optimizer(config.optimizer, learning_rate),
            loss=keras.losses.BinaryCrossentropy(),
            metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
        )
        # Train: early stopping on dev keeps the best weights; best.keras survives an interruption.
        history_file = output / "history.csv"
        history_file.unlink(missing_ok=True)
        with fit_notices_silenced():
            model.fit(
                train_data,
                validation_data=dev_data,
                epochs=config.epochs,
                callbacks=make_callbacks(output, config.patience or None, backup=False),
                verbose=keras_verbosity(args),
            )
        (output / "best.keras").unlink(missing_ok=True)
        plot_history(history_file, output / "training_curves.png")
    if config.model == "transfer" and config.imagenet_veto != "none":
        model = with_imagenet_veto(model, config)
        eval_train = finalize_dataset(splits["train"].dataset(config.image_size), config.batch_size, False)
        dev_data = finalize_dataset(splits["dev"].dataset(config.image_size), config.batch_size, False)
    for path in sorted(set(skipped)):
        warn(PROG, f"skipped unreadable image {path}")

    # Evaluate on train (no augmentation) and dev: the two numbers of the bias/variance readout.
    train_accuracy, train_count = _accuracy(model, eval_train)
    dev_labels, dev_probabilities = _labels_and_probabilities(model, dev_data)
    dev_metrics = binary_classification_metrics(dev_labels, dev_probabilities, config.threshold)
    metrics = {
        "model": config.model,
        "counts": counts,
        "train_accuracy": train_accuracy,
        "train_examples": train_count,
        "train_dev_accuracy": dev_metrics["accuracy"],
        "train_dev_roc_auc": dev_metrics["roc_auc"],
        "train_dev_examples": dev_metrics["num_examples"],
        "parameters": int(model.count_params()),
    }
    if real_dev is not None:
        # The distribution users care about: measured, never trained on.
        readable, labels, outputs = predict_labelled_files(
            model, real_dev.files, real_dev.labels.tolist(), 64,
            on_error=lambda path, error: warn(PROG, f"error: {error}"),
        )  # fmt: skip
        real = binary_classification_metrics(labels, outputs[:, 0], config.threshold)
        metrics.update(
            dev_data=str(Path(args.dev).resolve()),
            dev_accuracy=real["accuracy"],
            dev_balanced_accuracy=real["balanced_accuracy"],
            dev_examples=real["num_examples"],
        )
    else:
        metrics["dev_accuracy"] = dev_metrics["accuracy"]  # No separate dev set: train-dev is the dev set.
    model.save(output / "model.keras")
    data = str(Path(args.data).resolve())
    (output / "config.json").write_text(to_json({"app": APP, **config.to_dict(), "data": data}, indent=2) + "\n")
    (output / "metrics.json").write_text(to_json(metrics, indent=2) + "\n")
    metrics["output"] = str(output)
    real_text = f", dev (--dev) balanced accuracy {metrics['dev_balanced_accuracy']:.3f}" if real_dev else ""
    emit(
        args,
        metrics,
        f"{config.model}: train accuracy {train_accuracy:.3f}, train-dev accuracy {dev_metrics['accuracy']:.3f}"
        f"{real_text} ({metrics['parameters']:,} parameters)\nwrote {output}/: "
        + ", ".join(sorted(p.name for p in output.iterdir())),
    )


# === Evaluate ===


def bias_variance_readout(train_error, train_dev_error, dev_error=None, test_error=None, human_error=0.0):
    """The course's diagnosis from train, train-dev, dev and test error: which gap is largest, and what to do.

    avoidable bias = train - human error; variance = train-dev - train (same distribution, unseen images);
    data mismatch = dev - train-dev (the distribution users care about vs the training one); overfitting to dev =
    test - dev. Errors are fractions (0-1); a missing one (None) leaves its gap out.
    """
    gaps = {"avoidable bias": train_error - human_error, "variance": train_dev_error - train_error}
    if dev_error is not None:
        gaps["data mismatch"] = dev_error - train_dev_error
    if test_error is not None and dev_error is not None:
        gaps["overfitting to dev"] = test_error - dev_error
    advice_for = {
        "avoidable bias": ["a bigger model (more layers or units)", "train longer / a better optimiser"],
        "variance": ["more training data or augmentation", "regularisation (L2, dropout)", "a smaller model"],
        "data mismatch": [
            "error analysis: look at the dev mistakes to see how the dev data differs from the training data",
            "make training data more like dev (collect it, or synthesise it), or use what a pretrained model knows",
        ],
        "overfitting to dev": ["a bigger dev set"],
    }
    largest = max(gaps, key=gaps.get)
    diagnosis = f"high {largest}" if gaps[largest] >= 0.05 else "no large gap"
    readout = {
        "human_error": human_error,
        "train_error": train_error,
        "train_dev_error": train_dev_error,
        "dev_error": dev_error,
        "test_error": test_error,
        **{name.replace(" ", "_"): value for name, value in gaps.items()},
        "diagnosis": diagnosis,
        "advice": advice_for[largest] if gaps[largest] >= 0.05 else [],
    }
    return readout


def _readout_lines(readout):
    names = [("train", "train_error"), ("train-dev", "train_dev_error"), ("dev", "dev_error"), ("test", "test_error")]
    errors = "  ".join(f"{name} {readout[key]:.3f}" for name, key in names if readout.get(key) is not None)
    gaps = [("avoidable bias", "avoidable_bias"), ("variance", "variance"), ("data mismatch", "data_mismatch"),
            ("overfitting to dev", "overfitting_to_dev")]  # fmt: skip
    gap_text = "  ".join(f"{name} {readout[key]:+.3f}" for name, key in gaps if key in readout)
    lines = [f"error: {errors}", f"gaps: {gap_text} -> {readout['diagnosis']}"]
    return lines + [f"  try: {item}" for item in readout["advice"]]


def load_cat_model(model_dir):
    """A trained model folder, or "imagenet": the zero-shot baseline built in memory (no training, no folder)."""
    if str(model_dir) == "imagenet":
        config = CatConfig(model="imagenet", image_size=(224, 224), backbone_image_size=224)
        return build_cat_model(config), {"app": APP, **config.to_dict()}
    return load_model_dir(model_dir, APP)


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
    result = {**metrics, "bias_variance": readout, "error_gallery": str(gallery), "skipped": skipped}
    if args.json:
        emit(args, result, "")
        return EXIT_BAD_INPUT if skipped else None
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
    lines.append(f"error gallery: {gallery}")
    print("\n".join(lines))
    return EXIT_BAD_INPUT if skipped else None


# === Export ===


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
