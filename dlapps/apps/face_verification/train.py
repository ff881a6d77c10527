"""`dlapps faces train`: the embedding trained on a folder of people's face chips."""

import json
from pathlib import Path

import numpy as np

from dlapps.apps.face_verification.app import APP, PROG, _report_error, find_faces
from dlapps.apps.face_verification.config import FaceConfig
from dlapps.apps.face_verification.evaluate import _open_set_threshold
from dlapps.apps.face_verification.people import read_people
from dlapps.cli.common import emit, keras_verbosity, say, to_json, warn
from dlapps.cli.run_folders import check_train_output, prepare_run_folder
from dlapps.data.pairs import sample_pairs
from dlapps.data.readers import DataError
from dlapps.metrics.verification import (
    best_threshold,
    fit_confidence,
    ten_fold_accuracy,
    verification_report,
)
from dlapps.tasks.face_embedder import build_face_embedder


def _chips_by_person(folder, seed):
    """Every readable face chip of a folder of identities, grouped by person, in memory (uint8)."""
    files, labels, names = read_people(folder)
    label_of = dict(zip(files, labels, strict=True))
    chips = {}
    for path, _, chip in find_faces(files, on_error=_report_error):
        chips.setdefault(names[label_of[path]], []).append(chip)
    people = sorted(name for name, own in chips.items() if len(own) >= 2)
    if len(people) < len(names):
        warn(PROG, f"{len(names) - len(people)} of {len(names)} people have fewer than 2 faces found and are left out "
                   "of triplet training (a triplet needs two photos of a person)")  # fmt: skip
    if len(people) < 4:
        raise DataError(f"{folder}: triplet training needs at least 4 people with 2 or more faces; found {len(people)}")
    return {name: np.stack(chips[name]) for name in people}


def train(args):
    """Triplet training through `dlapps.training.fit_phases`: resumable, the best epoch on the dev pairs' 10-fold
    accuracy kept; the threshold and the confidence curve chosen on those pairs are stored with the model."""
    import keras

    from dlapps.tasks.face_embedder import DevPairs, labelled_batches, pk_batches, triplet_phases
    from dlapps.training import (
        finished_phase_model,
        fit_phases,
        plot_phase_history,
        remove_phase_files,
        save_atomically,
    )

    output, state = check_train_output(args)
    weights = args.weights or {"dlib": "dlib", "efficientnet_lite0": "imagenet", "small_resnet": "none"}[args.backbone]
    config = FaceConfig(
        backbone=args.backbone, weights=weights, margin=args.margin, mining=args.mining, epochs=args.epochs,
        head_epochs=args.head_epochs, steps_per_epoch=args.steps_per_epoch, learning_rate=args.learning_rate,
        seed=args.seed, people_per_batch=args.people_per_batch, images_per_person=args.images_per_person,
        fine_tune_fraction=args.fine_tune_fraction, jitter=args.jitter, warmup_epochs=args.warmup_epochs,
        patience=args.patience,
    )  # fmt: skip
    if args.resume:
        # The run's own options, whatever this command line says (as the fine-tuner resumes).
        saved = json.loads((output / "config.json").read_text())  # its data: checked by check_train_output
        config = FaceConfig(**{k: v for k, v in saved.items() if k in FaceConfig().to_dict()})
        warn(PROG, f"resuming {output}: its own config.json is used (other training options here are ignored)")
    keras.utils.set_random_seed(config.seed)
    data = str(Path(args.folder).resolve())
    chips = _chips_by_person(args.folder, config.seed)
    # Identities held out of training: the dev pairs that choose the epoch and the threshold.
    people = list(chips)
    order = np.random.default_rng(config.seed).permutation(len(people))
    dev_count = max(2, int(round(config.dev_fraction * len(people))))
    dev_people = [people[i] for i in sorted(order[:dev_count])]
    train_people = [name for name in people if name not in dev_people]
    pairs, same = sample_pairs([len(chips[name]) for name in dev_people], 5, seed=config.seed)
    dev_stack = np.concatenate([chips[name] for name in dev_people]).astype(np.float32)
    if len(train_people) < config.people_per_batch:
        warn(PROG, f"only {len(train_people)} training people (after {len(dev_people)} held out as dev): each batch "
                   f"holds all of them, not --people-per-batch {config.people_per_batch}; add people for a "
                   "face model that generalises")  # fmt: skip
    say(args, f"{len(train_people)} training people ({sum(len(chips[n]) for n in train_people)} faces), "
          f"{len(dev_people)} dev people ({len(dev_stack)} faces, {len(pairs)} dev pairs); "
          f"{config.backbone} ({config.weights}), margin {config.margin}, {config.mining} mining"
          + (f", after {config.warmup_epochs} CosFace warm-up epochs" if config.warmup_epochs else ""))  # fmt: skip

    prepare_run_folder(args, output)
    model = build_face_embedder(config.backbone, config.weights)
    dev = DevPairs(dev_stack, pairs, same, on_measure=lambda epoch, logs: warn(
        PROG, f"epoch {epoch}: loss {logs.get('loss', float('nan')):.4f}, "
              f"dev 10-fold accuracy {logs['val_pair_accuracy']:.4f}"), embedder=model)  # fmt: skip
    before_distances = dev.distances(model)
    before = verification_report(before_distances, same, best_threshold(before_distances, same))
    before_accuracy = ten_fold_accuracy(before_distances, same)[0]
    start = model.get_weights()
    groups = [chips[n] for n in train_people]
    batch_size = config.people_per_batch * config.images_per_person
    warmup_data = labelled_batches(groups, batch_size, config.seed, config.jitter) if config.warmup_epochs else None
    phases = triplet_phases(model, config.backbone, config.weights, config.learning_rate, config.margin,
                            config.mining, config.epochs, config.head_epochs, config.fine_tune_fraction,
                            config.warmup_epochs, warmup_data, identities=len(train_people))  # fmt: skip
    if state["phase_done"]:
        model.set_weights(finished_phase_model(output, phases, state["phase_done"], compile=False).get_weights())
    else:
        (output / "config.json").write_text(
            to_json({"app": APP, **config.to_dict(), "dev_people": dev_people, "data": data})
        )
        (output / "state.json").write_text(json.dumps(state))
    batches = pk_batches(groups, config.people_per_batch, config.images_per_person,
                         config.seed, config.jitter).repeat()  # fmt: skip
    # steps_per_epoch through a finite view: Keras' fit takes it from the dataset.
    summary = fit_phases(
        model, phases, batches.take(config.steps_per_epoch), None, output, config.patience,
        verbose=keras_verbosity(args), monitor="val_pair_accuracy", mode="max", start_phase=state["phase_done"],
        metric_callbacks=[dev],
    )  # fmt: skip

    # Training that made the dev pairs worse (fine-tuning a face network on a few people can) is not kept.
    distances = dev.distances(model)
    accuracy = ten_fold_accuracy(distances, same)[0]
    if accuracy < before_accuracy:
        accuracy = before_accuracy
        model.set_weights(start)
        distances, summary["kept"] = dev.distances(model), "before training"
    # The threshold and the confidence curve, chosen on the dev pairs, are stored with the model.
    config.threshold = best_threshold(distances, same)
    report = verification_report(distances, same, config.threshold)
    config.confidence_bias, config.confidence_slope = fit_confidence(distances, same)
    config.open_set_threshold = _open_set_threshold(report)
    save_atomically(model, output / "model.keras")
    (output / "config.json").write_text(
        to_json({"app": APP, **config.to_dict(), "dev_people": dev_people, "data": data}, indent=2)
    )
    remove_phase_files(output, phases)
    plot_phase_history(output, phases, monitor="val_pair_accuracy", keys=("loss", "pair_accuracy"), mode="max")
    metrics = {"dev_accuracy_before_training": before_accuracy, "dev_accuracy": accuracy,
               "dev_before_training": before, "dev": report, "phases": summary}  # fmt: skip
    (output / "metrics.json").write_text(to_json(metrics, indent=2))
    emit(args, {**metrics, "output": str(output)},
         f"dev 10-fold accuracy {before_accuracy:.4f} before training, {accuracy:.4f} after "
         + ("(no epoch beat the starting network: its weights were kept)" if summary.get("kept") == "before training"
            else f"(kept: {summary.get('kept')}'s best epoch)")
         + f"; threshold {config.threshold:.3f} -> {output}")  # fmt: skip
