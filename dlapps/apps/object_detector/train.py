"""`dlapps detect train`: k-means anchors, the cached and augmented data, the two phases
(`dlapps.training.fit_phases`) and the dev measures stored beside the model."""

import json
from pathlib import Path

import numpy as np

from dlapps.apps.object_detector.app import (
    APP,
    CALIBRATION_IMAGES,
    DEFAULT_THRESHOLDS,
    DEFAULTS,
    MONITORED,
    PHASES,
    PROG,
    _class_counts,
    _read,
    _read_quietly,
    _splits,
    fit_anchors,
)
from dlapps.cli.common import ProgressBar, counted, emit, keras_verbosity, say, to_json, warn
from dlapps.cli.run_folders import check_train_output, prepare_run_folder, run_files
from dlapps.data.readers import DataError


def _split(records, fraction, seed):
    order = np.random.default_rng(seed).permutation(len(records))
    count = max(1, int(round(fraction * len(records))))
    if len(records) - count < 1:
        raise DataError(f"{len(records)} image(s): too few to hold {count} out as dev; add images or pass --dev")
    return sorted(order[count:].tolist()), sorted(order[:count].tolist())


def train(args):
    import keras

    from dlapps.data.detection import cache_images, letterboxed_set, make_detection_dataset
    from dlapps.tasks.yolo_detector import DevMAP, build_yolo_detector, detect_canvases, detector_phases
    from dlapps.training import (
        finished_phase_model,
        fit_phases,
        make_strategy,
        phase_report,
        plot_phase_history,
        remove_phase_files,
        save_atomically,
    )

    if args.image_size % 32:
        raise ValueError(f"--image-size must be a multiple of 32. Received: {args.image_size}")
    if args.epochs is not None and (args.head_epochs is not None or args.fine_tune_epochs is not None):
        raise ValueError("--epochs HEAD FINE_TUNE and --head-epochs / --fine-tune-epochs are the same: give one")
    if args.epochs is None:  # --epochs HEAD FINE_TUNE, the first spelling, or the two options
        args.epochs = [
            DEFAULTS.head_epochs if args.head_epochs is None else args.head_epochs,
            DEFAULTS.fine_tune_epochs if args.fine_tune_epochs is None else args.fine_tune_epochs,
        ]
    if sum(args.epochs) == 0:
        raise ValueError("--head-epochs and --fine-tune-epochs are both 0: at least one epoch is needed")
    if not args.dev and args.dev_fraction == 0:
        raise ValueError(
            "--dev-fraction 0 leaves no dev images for early stopping and thresholds; pass a fraction or --dev"
        )
    if args.anchors % 3:
        raise ValueError(f"--anchors must be a multiple of 3 (the same number per scale). Received: {args.anchors}")
    output, state = check_train_output(args)
    keras.utils.set_random_seed(args.seed)
    data = args.data
    splits = _splits(args.data)
    if splits:  # the set's own splits (a YOLO data.yaml's, or train/ val/ test/ folders), as Ultralytics trains
        data = splits["train"]
        dev = args.dev or splits.get("val")
        held_out = "--dev" if args.dev else ("its val split" if dev else f"--dev-fraction {args.dev_fraction} of it")
        say(
            args,
            f"{args.data}: training on its train split, {data}; dev: {dev or 'held out'} ({held_out})"
            + (f"; its test split ({splits['test']}) is left out: evaluate on it" if "test" in splits else ""),
        )
        args.dev = dev
    records, class_names, kind, _ = _read(data)
    if args.dev:
        train_records = records
        dev_records, _, _ = _read_quietly(args.dev, class_names)
    else:
        train_index, dev_index = _split(records, args.dev_fraction, args.seed)
        train_records, dev_records = [records[i] for i in train_index], [records[i] for i in dev_index]
    saved = json.loads((output / "config.json").read_text()) if args.resume else None
    if saved:
        given = {**vars(args), "dev": args.dev and str(Path(args.dev).resolve())}
        for key in ("image_size", "backbone", "weights", "seed", "dev", "dev_fraction"):
            if key in saved and saved[key] != given[key]:  # runs older than a key did not store it
                raise ValueError(
                    f"--{key.replace('_', '-')} {given[key]} differs from the interrupted run's "
                    f"{saved.get(key)} ({output}/config.json); resume with the same options"
                )
        anchors, mean_iou = np.asarray(saved["anchors"], np.float32), saved["anchor_mean_iou"]
    else:
        anchors, mean_iou = fit_anchors(train_records, args.anchors, args.seed)
    size = args.image_size
    counts = _class_counts(train_records, class_names)
    background = sum(1 for r in train_records if not len(r.boxes))
    say(
        args,
        f"{args.data} ({kind.upper()}): {len(train_records)} training images ({background} without boxes), "
        f"{len(dev_records)} dev; boxes per class: {', '.join(f'{k} {v}' for k, v in counts.items())}",
    )
    say(
        args,
        f"{len(anchors)} anchors by k-means (mean best IoU {mean_iou:.3f}), {size}x{size} px, "
        f"{args.backbone} ({args.weights}); phases: head {counted(args.epochs[0], 'epoch')}, "
        f"fine-tune {counted(args.epochs[1], 'epoch')}; "
        f"best epoch and early stopping on dev {MONITORED[args.monitor]} "
        f"(patience {args.patience})",
    )

    # Data: decoded once, then augmented views and targets each epoch.
    all_records = train_records + dev_records
    progress = ProgressBar(len(all_records), "decoding images")
    failed = []
    cache = cache_images(all_records, size, progress.update, lambda path, error: failed.append((path, error)))
    for _path, error in failed:
        warn(PROG, f"skipping unreadable image: {error}")
    kept = cache[4]
    train_rows = np.where(kept < len(train_records))[0]
    dev_rows = np.where(kept >= len(train_records))[0]
    if not len(train_rows) or not len(dev_rows):
        raise DataError(f"{args.data}: no readable training or dev images left")
    num_classes = len(class_names)
    train_data = make_detection_dataset(
        cache,
        train_rows,
        anchors,
        size,
        num_classes,
        args.batch_size,
        True,
        args.seed,
        augmentation=not args.no_augment,
        mosaic_rate=args.mosaic,
    )
    canvases, truths, ignored = letterboxed_set(cache, dev_rows, size)
    train_canvases, train_truths, train_ignored = letterboxed_set(cache, train_rows, size)
    calibration = train_canvases[np.random.default_rng(args.seed).permutation(len(train_rows))[:CALIBRATION_IMAGES]]

    # Model and phases.
    steps = int(np.ceil(len(train_rows) / args.batch_size))
    strategy = make_strategy(args.strategy)
    with strategy.scope():
        model = finished_phase_model(output, PHASES, state["phase_done"], compile=False)
        model = model or build_yolo_detector(
            num_classes, size, args.backbone, args.weights, anchors_per_scale=len(anchors) // 3
        )

    phases = detector_phases(anchors, size, num_classes, args.epochs, args.learning_rate, steps,
                             args.fine_tune_fraction, args.weights != "none", args.box_gain,
                             args.objectness_loss)  # fmt: skip
    prepare_run_folder(args, output)
    config = {
        "app": APP,
        "class_names": class_names,
        "anchors": np.asarray(anchors).tolist(),
        "anchor_mean_iou": mean_iou,
        "image_size": size,
        "backbone": args.backbone,
        "weights": args.weights,
        "data": str(Path(args.data).resolve()),
        "dev": args.dev and str(Path(args.dev).resolve()),
        # Their names: `evaluate` warns of a set holding them wherever it lies (the data folder may be gone).
        "trained_images": sorted({Path(record.image).name for record in train_records + dev_records}),
        "dev_fraction": args.dev_fraction,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "augment": not args.no_augment,
        "mosaic": args.mosaic,
        "seed": args.seed,
        "monitor": args.monitor,
        "box_gain": args.box_gain,
        "objectness_loss": args.objectness_loss,
        **DEFAULT_THRESHOLDS,
    }
    if not args.resume:
        (output / "config.json").write_text(json.dumps(config, indent=2))
        (output / "state.json").write_text(json.dumps(state))
    with strategy.scope():
        summary = fit_phases(
            model,
            phases,
            train_data,
            None,
            output,
            args.patience,
            verbose=keras_verbosity(args),
            monitor=f"val_{args.monitor}",
            mode="max",
            start_phase=state["phase_done"],
            metric_callbacks=[DevMAP(canvases, truths, anchors, num_classes, calibration, ignored)],
        )

    # Thresholds tuned on dev, then the measures of train (no augmentation) and dev.
    from dlapps.metrics.detection import best_f1_threshold, coco_evaluate

    dev_detections = detect_canvases(model, canvases, anchors)
    threshold, at_threshold = best_f1_threshold(
        truths, dev_detections, DEFAULT_THRESHOLDS["score_threshold"], ignored=ignored
    )
    config["score_threshold"] = threshold
    dev = coco_evaluate(truths, dev_detections, num_classes, ignored=ignored)
    train_detections = detect_canvases(model, train_canvases, anchors)
    train_measured = coco_evaluate(train_truths, train_detections, num_classes, ignored=train_ignored)
    metrics = {
        "phases": summary,
        "classes": class_names,
        "train_boxes": counts,
        "train_map50": train_measured["map50"],
        "train_map75": train_measured["map75"],
        "train_map": train_measured["map"],
        "dev_map50": dev["map50"],
        "dev_map75": dev["map75"],
        "dev_map": dev["map"],
        "dev_images": len(dev_rows),
        "score_threshold": threshold,
        "dev_at_threshold": at_threshold,
    }
    save_atomically(model, output / "model.keras")
    (output / "config.json").write_text(json.dumps(config, indent=2))
    (output / "metrics.json").write_text(to_json(metrics, indent=2) + "\n")
    plot_phase_history(output, phases, monitor=f"val_{args.monitor}", keys=("loss", args.monitor), mode="max")
    remove_phase_files(output, phases)
    metrics["output"] = str(output)
    metrics["files"] = run_files(output)
    best = phase_report(summary, better=f"dev {MONITORED[args.monitor]}")
    emit(
        args,
        metrics,
        f"{best}\nmAP@0.5 / @0.75 / @0.5:0.95: train {metrics['train_map50']:.3f} / {metrics['train_map75']:.3f} / "
        f"{metrics['train_map']:.3f} (the fit), dev {dev['map50']:.3f} / {dev['map75']:.3f} / {dev['map']:.3f}\n"
        f"score threshold {threshold:.2f} (best dev F1: precision {at_threshold['precision']:.3f}, "
        f"recall {at_threshold['recall']:.3f})\nwrote {output}/: {', '.join(metrics['files'])}",
    )
