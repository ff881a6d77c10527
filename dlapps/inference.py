"""Load a trained model folder and run it on image files, one bad file never stopping the rest."""

import json
from pathlib import Path

import keras
import numpy as np

from dlapps.data.images import ImageReadError, read_image
from dlapps.data.pipelines import resize_images
from dlapps.presets import resolve_model


def register_layers():
    """Import every module that registers a `dlapps>` Keras layer, so any model folder loads on its own."""
    import dlapps.backbones.applications  # noqa: F401
    import dlapps.backbones.dlib_resnet  # noqa: F401
    import dlapps.backbones.vgg  # noqa: F401
    import dlapps.losses.cosface  # noqa: F401
    import dlapps.losses.triplet  # noqa: F401
    import dlapps.tasks.imagenet  # noqa: F401
    import dlapps.tasks.style_transformer  # noqa: F401
    import dlapps.tasks.yolo_detector  # noqa: F401


APP_NAMES = {
    "cat": "dlapps cat",
    "finetune": "dlapps finetune",
    "faces": "dlapps faces",
    "detect": "dlapps detect",
    "style": "dlapps style",
}


def model_app(config):
    """The app that made a model folder: its config's `app`, or (folders written before that key) its shape."""
    if "app" in config:
        return config["app"]
    if "backbone" in config:
        return "finetune"
    return "cat" if "model" in config else None


def load_model_dir(model_dir, app=None):
    """Load `model.keras` and `config.json` from a trained model folder.

    Args:
        model_dir: the folder (or its `model.keras` file), or a preset name of `app` (`dlapps.presets`).
        app: the app asking ("cat", "finetune", ...); a folder made by another app is refused.

    Raises:
        ValueError: the folder is missing, is not a model folder, or was made by another app.
    """
    model_dir = resolve_model(model_dir, app) if app else Path(model_dir)
    if not model_dir.exists():
        raise ValueError(f"{model_dir}: no such model folder; train one (train --output DIR) or pass another")
    if model_dir.is_file() and model_dir.suffix != ".keras":
        raise ValueError(f"{model_dir}: expected a model folder (holding model.keras and config.json), not a file")
    model_file = model_dir / "model.keras" if model_dir.is_dir() else model_dir
    config_file = model_file.parent / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    maker = model_app(config)
    if app and maker and maker != app:
        raise ValueError(
            f"{model_dir}: this model was made by {APP_NAMES.get(maker, maker)}, not {APP_NAMES.get(app, app)}; "
            f"use {APP_NAMES.get(maker, maker)} with it"
        )
    if not model_file.is_file():
        raise ValueError(f"{model_dir}: not a model folder (no model.keras in it); train one or pass another")
    register_layers()
    model = keras.saving.load_model(model_file, compile=False)
    return model, config


def predict_files(model, files, batch_size=32, on_result=None, on_error=None):
    """Run a model on image files in batches.

    Args:
        model: a Keras classifier taking (N, H, W, 3) 0-255 pixels.
        files: image paths.
        batch_size: images per forward pass.
        on_result: called as on_result(path, output_row) for each decoded image, in order.
        on_error: called as on_error(path, ImageReadError) for each file that could not be read.
    """
    image_size = tuple(model.input_shape[1:3])
    batch, batch_files = [], []

    def flush():
        if batch:
            outputs = np.asarray(model(np.stack(batch), training=False))
            for path, row in zip(batch_files, outputs, strict=True):
                on_result(path, row)
            batch.clear()
            batch_files.clear()

    for path in files:
        try:
            image = read_image(path)
        except ImageReadError as error:
            on_error(path, error)
            continue
        batch.append(np.asarray(resize_images(image, image_size)))
        batch_files.append(path)
        if len(batch) == batch_size:
            flush()
    flush()


def as_class_probabilities(outputs):
    """(N, 1) sigmoid outputs to (N, 2) [P(class 0), P(class 1)]; softmax outputs unchanged."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 1:
        outputs = outputs[:, None]
    if outputs.shape[-1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=-1)
    return outputs


def dataset_outputs(model, dataset):
    """Labels and model outputs over a dataset of (images, labels) batches, as two NumPy arrays.

    An empty dataset gives empty arrays (outputs of shape (0,)).
    """
    import tensorflow as tf

    # predict_on_batch runs Keras' compiled predict function (eager calls were 3x slower on Lite0), except under
    # MultiWorkerMirroredStrategy, where it gathers every worker's batch (outputs twice as long as the labels).
    strategy = getattr(model, "distribute_strategy", None)
    compiled = not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    labels, outputs = [], []
    for images, batch_labels in dataset:
        batch = model.predict_on_batch(images) if compiled else model(images, training=False)
        outputs.append(np.asarray(batch))
        labels.append(np.asarray(batch_labels))
    if not labels:
        return np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(labels), np.concatenate(outputs)


def predict_labelled_files(model, files, labels, batch_size=32, on_error=None):
    """Run a model on labelled image files, skipping unreadable ones; labels stay aligned with the outputs.

    Returns:
        (readable, labels, outputs): the files that were read, their labels (int array), and the model's
        output rows for them (array of shape (len(readable), outputs)).
    """
    readable, outputs = [], []
    predict_files(
        model, files, batch_size,
        on_result=lambda path, row: (readable.append(path), outputs.append(row)),
        on_error=on_error,
    )  # fmt: skip
    label_of = dict(zip(files, labels, strict=True))
    return readable, np.array([label_of[path] for path in readable], dtype=np.int64), np.asarray(outputs)
