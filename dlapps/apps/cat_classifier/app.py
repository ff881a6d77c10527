"""The cat classifier, in the order of a keras-io example: data, model, train (`train.py`), evaluate and export
(`evaluate.py`)."""

from pathlib import Path

import numpy as np

from dlapps.apps.cat_classifier.config import CatConfig
from dlapps.cli.common import (
    readable_files,
    warn,
)
from dlapps.data.images import read_image
from dlapps.data.pipelines import make_array_dataset, make_file_dataset
from dlapps.data.readers import (
    DataError,
    check_class_counts,
    find_catvnoncat_pair,
    find_split_folders,
    read_catvnoncat_h5,
    read_image_folder,
)
from dlapps.inference import dataset_outputs, load_model_dir
from dlapps.metrics.classification import binary_classification_metrics
from dlapps.tasks.image_classifier import build_image_classifier

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
