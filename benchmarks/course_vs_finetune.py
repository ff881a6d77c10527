"""The course's transfer-learning procedure and `dlapps finetune train` with its defaults, side by side, one run.

Both see the same split: the course's `image_dataset_from_directory(validation_split=0.2, seed=42)` of the data
folder, written out as train/ and val/ folders (links) for dlapps. Both start from the same offline EfficientNet-Lite0
ImageNet weights. The course's procedure, written out: 160x160, flip + rotation 0.2, frozen base, dropout 0.2, one
logit, Adam 1e-3 for 5 epochs, then the top ~22% of the base unfrozen at Adam 1e-4 for 5 more.

    python benchmarks/course_vs_finetune.py ../shared/data/alpaca --output runs/course_vs_finetune

Prints one JSON object: val accuracy and seconds for each. Both are timed the same way, as one command from start to
exit (Python start-up, imports and model building included: `seconds`); the course's `training_seconds` counts only
from building its datasets to the end of training, as the issue first measured it.
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.timing import timed_json_command  # noqa: E402


def course_procedure(data, seed=42):
    import keras
    import tensorflow as tf

    from dlapps.backbones.efficientnet_lite import build_efficientnet_lite0

    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    options = dict(validation_split=0.2, seed=seed, image_size=(160, 160), batch_size=32, shuffle=True)
    train = keras.utils.image_dataset_from_directory(data, subset="training", **options)
    val = keras.utils.image_dataset_from_directory(data, subset="validation", **options)
    files = {"train": train.file_paths, "val": val.file_paths}
    train, val = train.prefetch(tf.data.AUTOTUNE), val.prefetch(tf.data.AUTOTUNE)
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.2)])
    base = build_efficientnet_lite0((160, 160, 3), include_top=False, pooling="avg", weights="imagenet")
    base.trainable = False
    inputs = keras.Input((160, 160, 3))
    x = base(augment(inputs), training=False)
    outputs = keras.layers.Dense(1)(keras.layers.Dropout(0.2)(x))
    model = keras.Model(inputs, outputs)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    metric = keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")
    model.compile(keras.optimizers.Adam(1e-3), loss, metrics=[metric])
    model.fit(train, validation_data=val, epochs=5, verbose=0)
    base.trainable = True
    fine_tune_at = int(len(base.layers) * 0.78)
    for layer in base.layers[:fine_tune_at]:
        layer.trainable = False
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    model.compile(keras.optimizers.Adam(1e-4), loss, metrics=[metric])
    history = model.fit(train, validation_data=val, epochs=10, initial_epoch=5, verbose=0)
    seconds = time.perf_counter() - start
    return {"val_accuracy": float(history.history["val_accuracy"][-1]), "training_seconds": seconds}, files


def course_command(data, output):
    """The course's procedure as one command (this script with --course-only), timed from start to exit."""
    command = [sys.executable, __file__, str(data), "--output", str(output), "--course-only"]
    course, seconds = timed_json_command(command)
    return {**course, "seconds": seconds}


def write_split(files, data, folder):
    """train/<class>/ and val/<class>/ folders of links to the course's split."""
    if folder.exists():
        shutil.rmtree(folder)
    for split, paths in files.items():
        for path in map(Path, paths):
            target = folder / split / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path.resolve())
    return folder


def dlapps_defaults(split_folder, output):
    command = [sys.executable, "-m", "dlapps", "finetune", "train", str(split_folder), "--output", str(output)]
    metrics, seconds = timed_json_command([*command, "--overwrite", "--json"])
    return {"val_accuracy": metrics["dev_accuracy"], "seconds": seconds, "phases": metrics["phases"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a folder of class subfolders (the course's alpaca folder)")
    parser.add_argument("--output", default="runs/course_vs_finetune", help="where the split and the model go")
    parser.add_argument("--course-only", action="store_true", help="run the course's procedure only, write the split")
    args = parser.parse_args()
    output = Path(args.output)
    if args.course_only:
        course, files = course_procedure(args.data)
        write_split(files, args.data, output / "split")
        print(json.dumps(course))
        return
    course = course_command(args.data, output)
    split = output / "split"
    ours = dlapps_defaults(split, output / "dlapps")
    val_images = len([path for path in (split / "val").rglob("*") if path.is_file() or path.is_symlink()])
    print(json.dumps({"course": course, "dlapps_defaults": ours, "val_images": val_images}, indent=2))


if __name__ == "__main__":
    main()
