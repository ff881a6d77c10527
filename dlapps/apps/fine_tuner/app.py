"""The fine-tuner, in the order of the Keras transfer-learning guide: data, model, two training phases, evaluate,
predict, export."""

import dataclasses
import json
import shutil
from pathlib import Path

import keras
import numpy as np

from dlapps.apps.fine_tuner.config import SCRATCH_RECIPE, FineTuneConfig, scratch_epochs
from dlapps.backbones.applications import build_backbone
from dlapps.cli.common import (
    EXIT_BAD_INPUT,
    check_output_folder,
    clear_run_folder,
    counted,
    default_output,
    emit,
    keras_verbosity,
    readable_files,
    to_json,
    warn,
)
from dlapps.data.images import list_image_files, read_image
from dlapps.data.pipelines import build_augmentation, finalize_dataset, make_file_dataset
from dlapps.data.readers import (
    DataError,
    check_class_counts,
    find_split_folders,
    read_image_folder,
    stratified_split,
)
from dlapps.inference import (
    dataset_outputs,
    load_model_dir,
    predict_labelled_files,
)
from dlapps.metrics.classification import multiclass_metrics
from dlapps.plots import plot_confusion_matrix, plot_gallery, short_name
from dlapps.training import (
    balanced_class_weights,
    base_layers,
    finished_phase_model,
    fit_phases,
    fit_phases_multi_worker,
    fit_seed_ensemble,
    frozen_part_features,
    head_on_features,
    make_learning_rate,
    make_optimizer,
    make_strategy,
    phase_report,
    plot_phase_history,
    remove_member_folders,
    remove_phase_files,
    save_atomically,
    unfreeze_start,
    unfreeze_top,
)
from dlapps.tuning import random_search

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
        backbone = build_backbone(config.backbone, (config.image_size, config.image_size), config.weights)
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


def _check_output(args):
    """Refuse an --output that holds a finished model or another interrupted run, before anything is written.

    A folder left by a run that failed before training started (no config.json) blocks nothing.
    """
    output = check_output_folder(args.output)
    state_file = output / "state.json"
    if args.resume:
        if (output / "model.keras").exists():
            raise FileExistsError(f"--resume: {output} holds a finished run (model.keras); nothing to resume")
        if not state_file.exists() or not (output / "config.json").exists():
            raise ValueError(f"--resume: {output} holds no interrupted run to resume")
        saved = json.loads((output / "config.json").read_text())
        if saved.get("data") and Path(args.data).resolve() != Path(saved["data"]):
            raise ValueError(
                f"--resume: {output} is a run on {saved['data']}, not on {args.data}; pass that folder to resume it"
            )
        warn(PROG, f"resuming {output}: its own config.json is used (other options on this command are ignored)")
        return output, json.loads(state_file.read_text())
    if args.overwrite:
        clear_run_folder(output)
    if (output / "model.keras").exists():
        raise FileExistsError(
            f"{output} already holds a model; pass --overwrite to replace it, or pick another --output"
        )
    if state_file.exists() and (output / "config.json").exists():
        raise FileExistsError(f"{output} holds an interrupted run; pass --resume to continue it or --overwrite")
    return output, {"phase_done": 0}


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


def train(args):
    output, state = _check_output(args)
    config = _load_run_config(output) if args.resume else _config_from_args(args)
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = make_strategy(config.strategy)

    # Data and model first: a bad folder or unavailable weights stop the run before anything is written.
    splits, class_names = read_splits_for(args, config)
    with strategy.scope():
        # Resumed after a finished phase: that phase's model, not a new one (whose pretrained weights it replaces).
        model = finished_phase_model(output, PHASES, state["phase_done"])
        model = model or build_fine_tune_model(config, len(class_names))
    config.image_size = int(model.input_shape[1])
    counts, table = data_summary(splits, class_names)
    plan = _plan(config, model)  # with --json too: a --fine-tune-from that names no layer is refused here
    if not args.json:
        print(plan)
        print(f"{len(class_names)} classes, images per split:\n{table}", flush=True)
    skipped = []
    datasets = make_datasets(splits, config, skipped)
    output.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        data_path = str(Path(args.data).resolve())
        config_file = output / "config.json"
        config_file.write_text(
            json.dumps({"app": APP, **config.to_dict(), "class_names": class_names, "data": data_path}, indent=2)
        )
        (output / "state.json").write_text(json.dumps(state))  # The run is in progress until model.keras exists.
    labels = np.asarray(splits["train"][1])
    class_weight = balanced_class_weights(labels, len(class_names)) if config.class_weights else None

    # Train: the phases, with the best checkpoint, CSV history, TensorBoard logs and per-epoch backups for --resume.
    import tensorflow as tf

    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if multi_worker and config.members > 1:
        raise ValueError("--members trains one network after another: not with --strategy multi_worker")
    plain_train = plain_dataset(splits["train"], config)
    features = None if multi_worker else {"train": plain_train, "dev": datasets["dev"], "examples": len(labels)}
    steps_per_epoch = int(np.ceil(len(labels) / config.batch_size))

    def make_member(k, seed, folder, done):
        member_config = dataclasses.replace(config, seed=seed)
        member = finished_phase_model(folder, PHASES, done)
        member = member or (model if k == 0 else build_fine_tune_model(member_config, len(class_names)))
        member_data = datasets if k == 0 else make_datasets(splits, member_config, [])
        # The first member is the run's own model and phases (their unfrozen layer is the run's record).
        member_phases = phases if k == 0 else make_phases(member, member_config, steps_per_epoch, features)[0]
        return member, member_phases, member_data["train"], member_data["dev"]

    def dev_accuracy(trained):
        labels, probabilities = dataset_outputs(trained, datasets["dev"])
        return {"dev_accuracy": multiclass_metrics(labels, probabilities, class_names)["accuracy"]}

    phases, unfrozen = make_phases(model, config, steps_per_epoch, features)
    members, phase_summary = [], {}
    with strategy.scope():
        if multi_worker:
            fit_phases_multi_worker(
                model, phases, datasets["train"], config.batch_size, strategy, class_weight,
                report=lambda name, epoch, loss: warn(PROG, f"{name} epoch {epoch + 1}: loss {loss:.4f}"),
            )  # fmt: skip
        elif config.members > 1:
            model, phase_summary, members, phases = fit_seed_ensemble(
                make_member, config.members, output, config.patience, config.seed, dev_accuracy,
                verbose=keras_verbosity(args), class_weight=class_weight,
            )  # fmt: skip
        else:
            phase_summary = fit_phases(
                model, phases, datasets["train"], datasets["dev"], output, config.patience,
                verbose=keras_verbosity(args), class_weight=class_weight, start_phase=state["phase_done"],
            )  # fmt: skip
    for path in sorted(set(skipped)):
        warn(PROG, f"skipped unreadable image {path}")

    # Evaluate: dev for selection, test once.
    metrics = {"classes": class_names, "counts": counts, "phases": phase_summary, "unfrozen_from": unfrozen or None}
    if members:
        metrics["members"] = members
    for name in ("train", "dev", "test"):
        if name in datasets:
            dataset = datasets[name] if name != "train" else plain_train  # measured without augmentation
            labels, probabilities = dataset_outputs(model, dataset)
            metrics[f"{name}_accuracy"] = multiclass_metrics(labels, probabilities, class_names)["accuracy"]
            metrics[f"{name}_examples"] = int(len(labels))
    save_atomically(model, output / "model.keras")
    (output / "metrics.json").write_text(to_json(metrics, indent=2) + "\n")
    plot_phase_history(output, phases)
    remove_phase_files(output, phases)
    remove_member_folders(output, len(members))
    metrics["output"], metrics["files"] = str(output), sorted(p.name for p in output.iterdir())
    best = phase_report(phase_summary)
    emit(
        args,
        metrics,
        (f"{best}\n" if best else "")
        + f"train accuracy {metrics['train_accuracy']:.3f}, dev accuracy {metrics['dev_accuracy']:.3f}"
        + (f", test accuracy {metrics['test_accuracy']:.3f}" if "test_accuracy" in metrics else "")
        + "".join(
            f"\n  member {m['member']} (seed {m['seed']}): dev accuracy {m['dev_accuracy']:.3f}, kept {m['kept']}"
            for m in members
        )
        + f"\nwrote {output}/: {', '.join(metrics['files'])}",
    )


def _plan(config, model):
    """The line printed before training: the network, its input, the rate and what each phase trains."""
    base = f"--base {config.base}" if config.base else f"{config.backbone} ({config.weights} weights)"
    plan = f"one phase of {counted(config.head_epochs, 'epoch')}, the whole network"
    if not from_scratch(config):
        top = ""
        if config.fine_tune_epochs > 0:
            # A --fine-tune-from that names no layer is refused here, before anything is written.
            base_model = model.get_layer(BASE_LAYER)
            layers = base_layers(base_model)
            start = unfreeze_start(base_model, config.fine_tune_from, config.fine_tune_fraction)
            top = f" from layer {start} of {len(layers)}, {layers[start].name}"
        plan = (
            f"phase 1: {counted(config.head_epochs, 'epoch')}, the head; "
            f"phase 2: {counted(config.fine_tune_epochs, 'epoch')}, the base{top}"
        )
    return f"{base}, {config.image_size}x{config.image_size} px, learning rate {config.learning_rate:g}; {plan}"


# === Tune ===


def tune(args):
    """Random search of learning rate (log scale), dropout and fine-tune depth on dev, with keras-tuner."""
    config = _config_from_args(args)
    keras.utils.set_random_seed(config.seed)
    splits, class_names = read_splits_for(args, config)
    datasets = make_datasets(splits, config, [])
    datasets.pop("test", None)  # The test split plays no part in choosing hyperparameters.
    train_images = plain_dataset(splits["train"], config)
    features = {"train": train_images, "dev": datasets["dev"], "examples": len(splits["train"][0])}
    labels = np.asarray(splits["train"][1])
    class_weight = balanced_class_weights(labels, len(class_names)) if config.class_weights else None
    steps_per_epoch = int(np.ceil(len(splits["train"][0]) / config.batch_size))

    def run_trial(hp, trial_dir):
        trial_config = FineTuneConfig(**config.to_dict())
        trial_config.learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
        trial_config.dropout = hp.Float("dropout", 0.0, 0.5, step=0.1)
        trial_config.fine_tune_fraction = hp.Float("fine_tune_fraction", 0.0, 0.5, step=0.1)
        trial_config.fine_tune_epochs = config.fine_tune_epochs if trial_config.fine_tune_fraction > 0 else 0
        model = build_fine_tune_model(trial_config, len(class_names))
        phases, _ = make_phases(model, trial_config, steps_per_epoch, features)
        fit_phases(
            model, phases, datasets["train"], datasets["dev"], trial_dir, trial_config.patience,
            verbose=0, class_weight=class_weight, tensorboard=False,
        )  # fmt: skip
        dev_labels, probabilities = dataset_outputs(model, datasets["dev"])
        return {"dev_accuracy": multiclass_metrics(dev_labels, probabilities, class_names)["accuracy"]}

    best = random_search(run_trial, args.output, args.trials, config.seed, overwrite=args.overwrite, resume=args.resume)
    if args.json:
        emit(args, {"best_trials": best}, "")
        return None
    print(f"{'trial #':>7} {'dev acc':>8} {'learning rate':>14} {'dropout':>8} {'fine-tune fraction':>19}")
    for row in best:
        print(f"{row['trial']:>7} {row['dev_accuracy']:8.3f} {row['learning_rate']:14.2e} {row['dropout']:8.1f} "
              f"{row['fine_tune_fraction']:19.1f}")  # fmt: skip
    top = best[0]
    print(
        f"train with: dlapps finetune train {args.data} --output OUT --learning-rate {top['learning_rate']:.2e} "
        f"--dropout {top['dropout']:.1f} --fine-tune-fraction {top['fine_tune_fraction']:.1f}"
    )


# === Evaluate ===


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
    result = {"data": str(folder), **metrics, "exported": {}, "skipped": failed}
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
    if args.json:
        emit(args, result, "")
    else:
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
        print("\n".join(lines))
    return EXIT_BAD_INPUT if failed else None


# === Predict ===


# === Export ===


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
