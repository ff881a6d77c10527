"""Choose a from-scratch recipe by k-fold cross-validation on the fine-tuner's train + dev split (test untouched).

A 49-image dev split moves by 0.02 per image, less than the differences between recipes; k folds over train + dev
(278 alpaca images) measure each recipe on every one of them. The folder is split as `dlapps finetune train` splits
it (the seeded 70/15/15 split, so the test images are never read); the network is the recipe's `small_resnet` with
the fine-tuner's augmentation, trained for a fixed number of epochs, and measured at its last epoch (the weight
average when `--ema-momentum` is set), with and without averaging each image with its mirror image.

    python benchmarks/scratch_cv.py ../shared/data/alpaca --output runs/scratch_cv --name adamw_ema \\
        --optimizer adamw --learning-rate 2e-3 --weight-decay 0.05 --ema-momentum 0.99

Prints one JSON line per fold, then a summary (mean accuracy, mean accuracy with mirror averaging, training-fold
accuracy, seconds), appended to `results.jsonl` under --output.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a folder of class subfolders (e.g. ../shared/data/alpaca)")
    parser.add_argument("--output", default="runs/scratch_cv", help="results.jsonl is appended here")
    parser.add_argument("--name", required=True, help="the recipe's name in the results")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--filters", default="16,32,64,128", help="small_resnet's stage widths")
    parser.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="cosine-annealed to 0")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--ema-momentum", type=float, default=0.0, help="0: no weight average")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--augment-strength", type=float, default=2.0)
    parser.add_argument("--augment-crop", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42, help="weights and augmentation (the folds are fixed)")
    return parser.parse_args()


def optimizer_for(args, steps):
    import keras

    from dlapps.training import make_optimizer

    rate = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)
    return make_optimizer(args.optimizer, rate, weight_decay=args.weight_decay, ema_momentum=args.ema_momentum,
                          nesterov=True)  # fmt: skip


def main():
    args = parse_args()
    import keras
    import numpy as np
    import tensorflow as tf

    from dlapps.apps.fine_tuner.app import read_splits
    from dlapps.apps.fine_tuner.config import FineTuneConfig
    from dlapps.backbones.small_resnet import build_small_resnet
    from dlapps.data.pipelines import build_augmentation, make_file_dataset

    size = (args.image_size, args.image_size)
    splits, class_names = read_splits(args.data, FineTuneConfig(weights="none", image_size=args.image_size))
    files = [*splits["train"][0], *splits["dev"][0]]  # never the test split
    labels = np.array([*splits["train"][1], *splits["dev"][1]])
    images = np.stack([image for image, _ in make_file_dataset(files, labels, size).as_numpy_iterator()])
    folds = np.array_split(np.random.default_rng(0).permutation(len(images)), args.folds)
    strength = args.augment_strength
    augment = build_augmentation(
        size, rotation=0.05 * strength, zoom=0.1 * strength, brightness=0.1 * strength, contrast=0.1 * strength,
        crop=args.augment_crop, seed=args.seed,
    )  # fmt: skip
    rows, start = [], time.time()
    for fold, held in enumerate(folds):
        keras.utils.set_random_seed(args.seed + fold)
        kept = np.setdiff1d(np.arange(len(images)), held)
        train = tf.data.Dataset.from_tensor_slices((images[kept], labels[kept]))
        train = train.shuffle(len(kept), seed=args.seed, reshuffle_each_iteration=True).batch(args.batch_size)
        train = train.map(lambda x, y: (augment(x, training=True), tf.one_hot(y, len(class_names))))
        base = build_small_resnet((*size, 3), filters=tuple(int(f) for f in args.filters.split(",")))
        inputs = keras.Input((*size, 3))
        features = keras.layers.Dropout(args.dropout)(base(inputs))
        model = keras.Model(inputs, keras.layers.Dense(len(class_names), activation="softmax")(features))
        steps = args.epochs * -(-len(kept) // args.batch_size)
        model.compile(
            optimizer_for(args, steps), keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing)
        )
        model.fit(train.prefetch(2), epochs=args.epochs, verbose=0)  # ends on the weight average, if any
        probabilities = model.predict(images[held], verbose=0)
        mirrored = model.predict(images[held][:, :, ::-1], verbose=0)
        row = {
            "fold": fold,
            "accuracy": float(np.mean(probabilities.argmax(1) == labels[held])),
            "accuracy_mirror_averaged": float(np.mean((probabilities + mirrored).argmax(1) == labels[held])),
            "train_accuracy": float(np.mean(model.predict(images[kept], verbose=0).argmax(1) == labels[kept])),
            "seconds": round(time.time() - start),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {
        "name": args.name,
        **{key: float(np.mean([row[key] for row in rows])) for key in rows[0] if key not in ("fold", "seconds")},
        "seconds": round(time.time() - start),
        "args": vars(args),
    }
    print(json.dumps(summary), flush=True)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    with open(output / "results.jsonl", "a") as file:
        file.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
