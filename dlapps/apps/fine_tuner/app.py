"""The fine-tuner, in the order of the Keras transfer-learning guide: data, model, two training phases (this
module: what every verb shares); the verbs are `train.py` (train, tune) and `evaluate.py` (evaluate, export)."""

import json
from pathlib import Path

import keras
import numpy as np

from dlapps.apps.fine_tuner.config import SCRATCH_RECIPE, FineTuneConfig, scratch_epochs
from dlapps.backbones.applications import OfflineWeightsError, build_backbone
from dlapps.cli.common import (
    readable_files,
    warn,
)
from dlapps.data.pipelines import build_augmentation, finalize_dataset, make_file_dataset
from dlapps.data.readers import (
    DataError,
    check_class_counts,
    find_split_folders,
    read_image_folder,
    stratified_split,
)
from dlapps.inference import (
    load_model_dir,
)
from dlapps.training import (
    frozen_part_features,
    head_on_features,
    make_learning_rate,
    make_optimizer,
    unfreeze_start,
    unfreeze_top,
)

PROG = "dlapps finetune"
APP = "finetune"
BASE_LAYER = "base"
PHASES = ("phase1", "phase2")  # make_phases' names: a head on the frozen base, then the base's top unfrozen


# === Data ===


def read_splits(data, config, check=True):
    """{split: (files, labels)} and the class names: given train/val/test folders, or a seeded stratified split.

    Every file is decoded once first (`check`), so that each unreadable one is named before training starts and a
    class left with too few images is refused up front.
    """
    data = Path(data)
    if data.is_file():
        raise DataError(
            f"{data}: the fine-tuner wants a folder of class subfolders (or train/ val/ splits), not a file"
        )
    folders = find_split_folders(data) if data.is_dir() else {}
    if folders:
        files, labels, class_names, skipped = read_image_folder(folders["train"])
        splits = {"train": (files, labels)}
        for split in ("dev", "test"):
            if split in folders:
                split_files, split_labels, _, more = read_image_folder(folders[split], class_names)
                splits[split] = (split_files, split_labels)
                skipped += more
    else:
        files, labels, class_names, skipped = read_image_folder(data)
        splits = {"train": (files, labels)}
    for path in skipped:
        warn(PROG, f"skipping non-image file {path}")
    if len(class_names) < 2:
        raise DataError(f"{data}: a classifier needs at least 2 class folders; found {class_names}")
    if check:
        splits = {name: readable_files(PROG, *split) for name, split in splits.items()}
    # An automatic split needs 3 images of each class (one each for train, dev and test).
    check_class_counts(splits["train"][1], class_names, 1 if "dev" in splits else 3, folders.get("train", data))
    if "dev" not in splits:
        files, labels = splits.pop("train")
        fractions = (config.dev_fraction, config.test_fraction) if "test" not in splits else (config.dev_fraction,)
        parts = stratified_split(labels, fractions, config.seed)
        names = ["train", "dev", "test"][: len(parts)]
        for name, indices in zip(names, parts, strict=True):
            splits[name] = ([files[i] for i in indices], [labels[i] for i in indices])
    return splits, class_names


def data_summary(splits, class_names):
    """Counts per class and split, as a table and as a dict (for --json and metrics.json)."""
    counts = {name: np.bincount(labels, minlength=len(class_names)).tolist() for name, (_, labels) in splits.items()}
    lines = [f"{'class':20s} " + " ".join(f"{name:>6s}" for name in counts)]
    for index, class_name in enumerate(class_names):
        lines.append(f"{class_name[:20]:20s} " + " ".join(f"{counts[name][index]:6d}" for name in counts))
    return counts, "\n".join(lines)


def make_datasets(splits, config, skipped):
    size = (config.image_size, config.image_size)
    strength = config.augment_strength
    augmentation = None
    if config.augment:
        augmentation = build_augmentation(
            size, rotation=0.05 * strength, zoom=0.1 * strength, brightness=0.1 * strength,
            contrast=0.1 * strength, crop=config.augment_crop, seed=config.seed,
        )  # fmt: skip
    datasets = {}
    for name, (files, labels) in splits.items():
        dataset = make_file_dataset(files, labels, size, skipped)
        training = name == "train"
        datasets[name] = finalize_dataset(
            dataset, config.batch_size, training, augmentation if training else None, config.seed
        )
    return datasets


def plain_dataset(files_and_labels, config):
    """A split's images in order, without augmentation (the frozen base's features, the training-split readout)."""
    size = (config.image_size, config.image_size)
    return finalize_dataset(make_file_dataset(*files_and_labels, size), config.batch_size, False)


# === Model ===


def _features_from_classifier(path):
    """A trained classifier without its output layer: the course's recipe for transfer."""
    model, _ = load_model_dir(path)
    if any(layer.name == "mean_of_members" for layer in model.layers):
        raise ValueError(f"--base {path}: a seed ensemble (--members); transfer from a run trained with --members 1")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"--base {path}: the model has no Dense output layer to replace")
    return keras.Model(model.inputs, dense[-1].input, name=BASE_LAYER)


def build_fine_tune_model(config, num_classes):
    """Base (frozen, batch norm in inference mode) + dropout + a new softmax head for the new classes."""
    if config.base:
        base = _features_from_classifier(config.base)
    else:
        try:
            backbone = build_backbone(config.backbone, (config.image_size, config.image_size), config.weights)
        except OfflineWeightsError as error:
            raise OfflineWeightsError(f"{error} Or --base MODEL: transfer from a classifier you trained.") from None
        base = keras.Model(backbone.input, backbone.output, name=BASE_LAYER)
    size = tuple(base.input_shape[1:3])
    inputs = keras.Input((*size, 3), name="image")
    # The Keras guide passes training=False here to keep batch norm in inference mode; in Keras 3.15 a functional
    # model does not honour it once the outer model trains (measured: moving means still move). What keeps them
    # frozen is trainable=False on the batch-norm layers: the whole base in phase 1, and unfreeze_top leaves them so.
    # From random weights, batch norm must normalise by batch statistics while training: run in inference mode, its
    # moving statistics (mean 0, variance 1 at initialisation) normalise nothing, activations saturate and the
    # network cannot fit its own training set (what made --weights none learn nothing).
    x = base(inputs) if from_scratch(config) else base(inputs, training=False)
    x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
    # float32 output, so that softmax stays stable under --mixed-precision.
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    # A pretrained base is frozen for phase 1; a randomly initialised one has nothing to protect and learns from the
    # start (a single phase: see fit_phases).
    base.trainable = from_scratch(config)
    return keras.Model(inputs, outputs, name="fine_tuned_classifier")


def from_scratch(config):
    """True when there are no pretrained weights to transfer: the whole network trains in one phase."""
    return not config.base and config.weights in (None, "none", "None")


def _compile(model, learning_rate, config):
    """Adam, or AdamW with `config.weight_decay`; an average of the weights with `config.ema_momentum`."""
    optimizer = make_optimizer("adamw" if config.weight_decay else "adam", learning_rate,
                               weight_decay=config.weight_decay, ema_momentum=config.ema_momentum)  # fmt: skip
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


# === Train ===


def _config_from_args(args):
    """The run's config: the command line, then (for options left unset) the from-scratch recipe when training
    without pretrained weights, then the defaults."""
    config = FineTuneConfig()
    scratch = getattr(args, "weights", None) in ("none", "None") and not getattr(args, "base", "")
    for key in config.to_dict():
        value = getattr(args, key, None)
        if value is None and scratch and key in SCRATCH_RECIPE:
            setattr(config, key, SCRATCH_RECIPE[key])  # head_epochs None: set from the data by read_splits_for
        elif value is not None:
            setattr(config, key, value)
    return config


def read_splits_for(args, config):
    """`read_splits`, then the from-scratch schedule's epochs when left to the recipe (a number of steps, whatever
    the folder's size)."""
    splits, class_names = read_splits(args.data, config)
    if config.head_epochs is None:
        config.head_epochs = scratch_epochs(len(splits["train"][0]), config.batch_size)
    return splits, class_names


def make_phases(model, config, steps_per_epoch=1, feature_data=None):
    """The fine-tuner's phases for `dlapps.training.fit_phases`: a head on the frozen base, then the top of the base
    unfrozen at a tenth of the learning rate (one phase, the whole network, when training from scratch).

    feature_data: {"train": dataset, "dev": dataset, "examples": int} of un-augmented images, in order; given (and
    `config.cache_features`), both phases train on features of these computed once (`frozen_part_features`).
    """
    unfrozen, cache = {}, {}

    def features(trained):
        # Both phases train on the frozen part's features, computed once (alpaca's course split, whole run: 72.8 s
        # on images every epoch, 33 s on features; dev accuracy over four seeds 0.965 vs 0.949, one image in 49).
        if not cache:
            start = None
            if config.fine_tune_epochs > 0:
                start = unfreeze_start(trained.get_layer(BASE_LAYER), config.fine_tune_from, config.fine_tune_fraction)
            cache.update(
                frozen_part_features(
                    trained, BASE_LAYER, start, feature_data, config.batch_size, config.seed, flip=config.augment
                )
            )
        return cache

    def compile_phase1(trained):
        learning_rate = config.learning_rate
        if from_scratch(config):
            # From random weights, a long schedule annealed to zero: dev loss settles instead of jumping between epochs.
            learning_rate = make_learning_rate(learning_rate, "cosine", steps_per_epoch, config.head_epochs)
        if from_scratch(config) or not (config.cache_features and feature_data):
            _compile(trained, learning_rate, config)
            return None
        head = head_on_features(trained, BASE_LAYER)
        _compile(head, learning_rate, config)
        return {"model": head, **features(trained)["phase1"]}

    def compile_phase2(trained):
        unfrozen["index"], unfrozen["layer"] = unfreeze_top(
            trained.get_layer(BASE_LAYER), config.fine_tune_from, config.fine_tune_fraction
        )
        if not (config.cache_features and feature_data) or features(trained)["cut"] is None:
            _compile(trained, config.learning_rate / 10, config)
            return None
        top = head_on_features(trained, BASE_LAYER, cut=features(trained)["cut"])
        _compile(top, config.learning_rate / 10, config)
        return {"model": top, **features(trained)["phase2"]}

    phases = [{"name": PHASES[0], "epochs": config.head_epochs, "prepare": compile_phase1, "description": "the head"}]
    if config.fine_tune_epochs > 0 and not from_scratch(config):
        about = "the base's top unfrozen"
        phases.append(
            {"name": PHASES[1], "epochs": config.fine_tune_epochs, "prepare": compile_phase2, "description": about}
        )
    return phases, unfrozen


def _load_run_config(output):
    saved = json.loads((output / "config.json").read_text())
    return FineTuneConfig(**{k: v for k, v in saved.items() if k in FineTuneConfig().to_dict()})
