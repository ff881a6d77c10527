"""`dlapps cat train`: the course's ladder of models on the cat / non-cat data, with the bias-variance readout."""

from pathlib import Path

import keras
import numpy as np

from dlapps.apps.cat_classifier.app import (
    APP,
    PROG,
    _accuracy,
    _check_two_classes,
    _config_from_args,
    _labels_and_probabilities,
    _read_cat_folder,
    build_cat_model,
    read_cat_data,
    with_imagenet_veto,
)
from dlapps.cli.common import emit, keras_verbosity, say, to_json, warn
from dlapps.cli.run_folders import check_output_folder, prepare_run_folder
from dlapps.data.pipelines import build_augmentation, finalize_dataset
from dlapps.data.readers import (
    stratified_split,
)
from dlapps.inference import predict_labelled_files
from dlapps.metrics.classification import binary_classification_metrics
from dlapps.plots import plot_history
from dlapps.training import fit_notices_silenced, make_callbacks, make_learning_rate, make_optimizer


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
    rows = [f"  {name:12s} non-cat {c[0]:5d}  cat {c[1]:5d}" for name, c in counts.items()]
    say(args, "images per split (the held-out 'dev' split is the course's train-dev set):\n" + "\n".join(rows))
    skipped = []
    augmentation = build_augmentation(config.image_size, seed=config.seed) if config.augment else None
    train_data = finalize_dataset(
        splits["train"].dataset(config.image_size, skipped), config.batch_size, True, augmentation, config.seed
    )
    eval_train = finalize_dataset(splits["train"].dataset(config.image_size), config.batch_size, False)
    dev_data = finalize_dataset(splits["dev"].dataset(config.image_size, skipped), config.batch_size, False)

    # Model.
    model = build_cat_model(config)
    prepare_run_folder(args, output)  # Only now: a bad path or unavailable weights leave nothing behind.
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
