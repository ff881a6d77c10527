"""`dlapps finetune train` (two phases, or a seed ensemble, or several workers) and `dlapps finetune tune` (a random
search over the recipe on dev)."""

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np

from dlapps.apps.fine_tuner.app import (
    APP,
    BASE_LAYER,
    PHASES,
    PROG,
    _config_from_args,
    _load_run_config,
    build_fine_tune_model,
    data_summary,
    from_scratch,
    make_datasets,
    make_phases,
    plain_dataset,
    read_splits_for,
)
from dlapps.apps.fine_tuner.config import FineTuneConfig
from dlapps.cli.common import counted, emit, keras_verbosity, say, to_json, warn
from dlapps.cli.run_folders import check_train_output, prepare_run_folder, run_files
from dlapps.inference import (
    dataset_outputs,
)
from dlapps.metrics.classification import multiclass_metrics
from dlapps.training import (
    balanced_class_weights,
    base_layers,
    finished_phase_model,
    fit_phases,
    fit_phases_multi_worker,
    fit_seed_ensemble,
    make_strategy,
    phase_report,
    plot_phase_history,
    remove_member_folders,
    remove_phase_files,
    save_atomically,
    unfreeze_start,
)
from dlapps.tuning import random_search


def train(args):
    output, state = check_train_output(args)
    if args.resume:
        warn(PROG, f"resuming {output}: its own config.json is used (other options on this command are ignored)")
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
    say(args, f"{plan}\n{len(class_names)} classes, images per split:\n{table}")
    skipped = []
    datasets = make_datasets(splits, config, skipped)
    prepare_run_folder(args, output)
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
    metrics["output"], metrics["files"] = str(output), run_files(output)
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
    lines = [f"{'trial #':>7} {'dev acc':>8} {'learning rate':>14} {'dropout':>8} {'fine-tune fraction':>19}"]
    for row in best:
        lines.append(f"{row['trial']:>7} {row['dev_accuracy']:8.3f} {row['learning_rate']:14.2e} "
                     f"{row['dropout']:8.1f} {row['fine_tune_fraction']:19.1f}")  # fmt: skip
    top = best[0]
    lines.append(
        f"train with: dlapps finetune train {args.data} --output OUT --learning-rate {top['learning_rate']:.2e} "
        f"--dropout {top['dropout']:.1f} --fine-tune-fraction {top['fine_tune_fraction']:.1f}"
    )
    emit(args, {"best_trials": best}, "\n".join(lines))
