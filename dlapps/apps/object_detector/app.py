"""The object detector's verbs. The library parts are in `models/`: readers (`dlapps/data/annotations.py`), the
pipeline (`dlapps/data/detection.py`), the network, targets, loss and NMS (`dlapps/tasks/yolo_detector.py`), mAP
(`dlapps/metrics/detection.py`) and the phase loop (`dlapps/training.py`)."""

import json
import sys
from pathlib import Path

import numpy as np

from dlapps.apps.object_detector.config import DetectConfig
from dlapps.cli.common import (
    ProgressBar,
    check_output_folder,
    check_train_output,
    default_output,
    emit,
    keras_verbosity,
    to_json,
    warn,
)
from dlapps.data.images import ImageReadError, read_image
from dlapps.data.readers import DataError

PROG = "dlapps detect"
APP = "detect"
PHASES = ("head", "fine_tune")
# Defaults stored with a model when dev cannot tune them (the course's values, but 10 boxes is too few for crowds).
DEFAULTS = DetectConfig()
DEFAULT_THRESHOLDS = DEFAULTS.thresholds()
# What each --monitor measures, as the printed lines name it.
MONITORED = {"map": "mAP@0.5:0.95", "map50": "mAP@0.5"}
# Training images (letterboxed, not augmented) whose batch statistics replace the moving averages before each dev
# measurement (dlapps.training.recalibrate_batch_norm).
CALIBRATION_IMAGES = 64


def _read(data, class_names=None):
    records, names, kind = _read_quietly(data, class_names)
    boxes = sum(len(record.boxes) for record in records)
    return records, names, kind, boxes


def _read_quietly(data, class_names):
    from dlapps.data.annotations import read_detection_folder

    return read_detection_folder(data, class_names, on_warning=lambda message: warn(PROG, f"warning: {message}"))


def _class_counts(records, class_names):
    counts = np.zeros(len(class_names), int)
    for record in records:
        np.add.at(counts, record.labels, 1)
    return dict(zip(class_names, counts.tolist(), strict=True))


def box_sizes(records):
    """Box widths and heights (N, 2) as fractions of the letterboxed input (divided by each image's longer side)."""
    return np.concatenate([(r.boxes[:, 2:] - r.boxes[:, :2]) / max(r.width, r.height) for r in records if len(r.boxes)])


# YOLOv3's nine COCO anchors (Redmon & Farhadi 2018), in pixels of its 416x416 input: the fallback for sets with
# fewer boxes than anchors.
COCO_ANCHORS = np.array([[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90], [156, 198],
                         [373, 326]], np.float64) / 416.0  # fmt: skip


def fit_anchors(records, k, seed=0):
    """k-means anchors (0-1 of the letterboxed input) from the boxes of `records`. A set with fewer than k boxes
    (k-means needs k) clusters its boxes together with YOLOv3's COCO anchors, with a notice.

    Raises:
        DataError: no boxes at all, or fewer than k boxes and COCO anchors together.
    """
    from dlapps.metrics.detection import kmeans_anchors

    sizes = box_sizes(records) if any(len(r.boxes) for r in records) else np.zeros((0, 2))
    if len(sizes) < k:
        if len(sizes) + len(COCO_ANCHORS) < k:
            raise DataError(f"{len(sizes)} training boxes: too few for --anchors {k}; pass --anchors 9 or fewer")
        warn(PROG, f"{len(sizes)} training box(es), fewer than the {k} anchors k-means needs: anchors from these "
                   "boxes together with YOLOv3's nine COCO anchors")  # fmt: skip
        return kmeans_anchors(np.concatenate([sizes, COCO_ANCHORS]), k, seed=seed)
    return kmeans_anchors(sizes, k, seed=seed)


# === Train ===


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
    records, class_names, kind, _ = _read(args.data)
    if args.dev:
        train_records = records
        dev_records, _, _ = _read_quietly(args.dev, class_names)
    else:
        train_index, dev_index = _split(records, args.dev_fraction, args.seed)
        train_records, dev_records = [records[i] for i in train_index], [records[i] for i in dev_index]
    saved = json.loads((output / "config.json").read_text()) if args.resume else None
    if saved:
        for key in ("image_size", "backbone", "weights", "seed"):
            if saved.get(key) != getattr(args, key):
                raise ValueError(
                    f"--{key.replace('_', '-')} {getattr(args, key)} differs from the interrupted run's "
                    f"{saved.get(key)} ({output}/config.json); resume with the same options"
                )
        anchors, mean_iou = np.asarray(saved["anchors"], np.float32), saved["anchor_mean_iou"]
    else:
        anchors, mean_iou = fit_anchors(train_records, args.anchors, args.seed)
    size = args.image_size
    counts = _class_counts(train_records, class_names)
    background = sum(1 for r in train_records if not len(r.boxes))
    if not args.json:
        print(
            f"{args.data} ({kind.upper()}): {len(train_records)} training images ({background} without boxes), "
            f"{len(dev_records)} dev; boxes per class: {', '.join(f'{k} {v}' for k, v in counts.items())}"
        )
        print(
            f"{len(anchors)} anchors by k-means (mean best IoU {mean_iou:.3f}), {size}x{size} px, "
            f"{args.backbone} ({args.weights}); phases: head {args.epochs[0]} epochs, fine-tune {args.epochs[1]}; "
            f"best epoch and early stopping on dev {MONITORED[args.monitor]} "
            f"(patience {args.patience})",
            flush=True,
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
                             args.fine_tune_fraction, pretrained=args.weights != "none")  # fmt: skip
    output.mkdir(parents=True, exist_ok=True)
    config = {
        "app": APP,
        "class_names": class_names,
        "anchors": np.asarray(anchors).tolist(),
        "anchor_mean_iou": mean_iou,
        "image_size": size,
        "backbone": args.backbone,
        "weights": args.weights,
        "data": str(Path(args.data).resolve()),
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "augment": not args.no_augment,
        "mosaic": args.mosaic,
        "seed": args.seed,
        "monitor": args.monitor,
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
    metrics["files"] = sorted(path.name for path in output.iterdir())
    best = phase_report(summary, better=f"dev {MONITORED[args.monitor]}")
    emit(
        args,
        metrics,
        f"{best}\nmAP@0.5 / @0.75 / @0.5:0.95: train {metrics['train_map50']:.3f} / {metrics['train_map75']:.3f} / "
        f"{metrics['train_map']:.3f} (the fit), dev {dev['map50']:.3f} / {dev['map75']:.3f} / {dev['map']:.3f}\n"
        f"score threshold {threshold:.2f} (best dev F1: precision {at_threshold['precision']:.3f}, "
        f"recall {at_threshold['recall']:.3f})\nwrote {output}/: {', '.join(metrics['files'])}",
    )


# === Loading and running a model ===


def load_app(args):
    """The model folder as an `ObjectDetector` (thresholds: the command line's, else the model's)."""
    from dlapps.apps.detector import ObjectDetector

    return ObjectDetector.from_folder(
        args.model,
        score_threshold=args.score_threshold,
        iou_threshold=args.iou_threshold,
        max_detections=args.max_detections,
        class_agnostic=args.class_agnostic,
    )


def load_detector(args):
    """The model folder's `Detector` and config (thresholds: the command line's, else the model's)."""
    app = load_app(args)
    return app.detector, app.config


def run_detector(detector, image):
    """Detections of one RGB uint8 image (`Detector.detect_one`): (boxes (M, 4) xyxy pixels, scores, classes)."""
    return detector.detect_one(image)


# === Evaluate ===


def evaluate(args):
    from dlapps.metrics.detection import coco_evaluate, match_detections, precision_recall
    from dlapps.plots import draw_detections, plot_gallery, plot_precision_recall

    detector, config = load_detector(args)
    class_names = config["class_names"]
    records, _, _, _ = _read(args.data, class_names)
    output = check_output_folder(args.output or default_output(args.model, "evaluate", "detect"))
    output.mkdir(parents=True, exist_ok=True)
    # mAP needs every box (a low score threshold); precision and recall use the chosen one.
    full = type(detector)(detector.model, detector.anchors, 0.001, detector.iou_threshold, 100, detector.class_agnostic)
    truths, ignored, detections, images, failures = [], [], [], [], 0
    progress = ProgressBar(len(records), "evaluating")
    for record in records:
        progress.update()
        try:
            image = read_image(record.image)
        except ImageReadError as error:
            warn(PROG, f"error: {error}")
            failures += 1
            continue
        truths.append((record.boxes, record.labels))
        # VOC "difficult" and COCO crowd objects: neither to find nor false when found (the VOC / COCO protocols).
        ignored.append((record.ignored_boxes, record.ignored_labels))
        detections.append(run_detector(full, image))
        images.append(record.image)
    if not truths:
        raise DataError(f"{args.data}: no readable image")
    measured = coco_evaluate(truths, detections, len(class_names), ignored=ignored)
    at = precision_recall(truths, detections, detector.score_threshold, ignored=ignored)
    result = {
        "data": str(args.data),
        "images": len(truths),
        "ignored_objects": sum(len(boxes) for boxes, _ in ignored),
        "map50": measured["map50"],
        "map": measured["map"],
        "map75": measured["map75"],
        "ap50_per_class": dict(zip(class_names, measured["ap50_per_class"], strict=True)),
        "ap_per_class": dict(zip(class_names, measured["ap_per_class"], strict=True)),
        "score_threshold": detector.score_threshold,
        "iou_threshold": detector.iou_threshold,
        **at,
    }
    plot_precision_recall(measured["precision50"], class_names, output / "precision_recall.png")
    written = ["metrics.json", "precision_recall.png"]
    (output / "worst_images.png").unlink(missing_ok=True)  # never a stale gallery from an earlier run

    # Worst images: most missed plus false boxes at the chosen threshold. Green: found, red: missed, magenta: false.
    kept = [
        (b[s >= detector.score_threshold], s[s >= detector.score_threshold], c[s >= detector.score_threshold])
        for b, s, c in detections
    ]
    matches = match_detections(truths, kept)
    errors = [int((~m).sum() + (~tp).sum()) for m, tp in matches]
    worst = [i for i in np.argsort(errors, kind="stable")[::-1][:12] if errors[i] > 0]
    pictures, captions = [], []
    for index in worst:
        (boxes, labels), (d_boxes, d_scores, d_classes), (matched, true_positive) = (
            truths[index],
            kept[index],
            matches[index],
        )
        colours = [(40, 180, 40) if tp else (200, 0, 200) for tp in true_positive] + [(220, 30, 30)] * int(
            (~matched).sum()
        )
        drawn = draw_detections(
            read_image(images[index]),
            np.concatenate([d_boxes.reshape(-1, 4), boxes[~matched].reshape(-1, 4)]),
            np.concatenate([d_classes, labels[~matched]]).astype(int),
            list(d_scores) + [None] * int((~matched).sum()) if len(d_scores) or (~matched).any() else None,
            class_names,
            colours,
        )
        pictures.append(drawn)
        captions.append(
            f"{Path(images[index]).name}: {int((~matched).sum())} missed, {int((~true_positive).sum())} false"
        )
    if pictures:
        plot_gallery(
            pictures,
            captions,
            output / "worst_images.png",
            "Worst images (green: found, magenta: false box, red: missed box)",
            columns=4,
        )
    if args.exported:
        result["exported"] = _compare_exported(args.exported, images, detector)
    result["output"] = str(output)
    if pictures:
        written.append("worst_images.png")
    result["files"] = sorted(written)
    (output / "metrics.json").write_text(to_json(result, indent=2) + "\n")
    per_class = ", ".join(f"{k} {v:.3f}" for k, v in result["ap50_per_class"].items() if v is not None)
    emit(
        args,
        result,
        f"{len(truths)} images: mAP@0.5 {result['map50']:.3f}, mAP@0.5:0.95 {result['map']:.3f} (pycocotools)"
        + (f"; {result['ignored_objects']} difficult or crowd object(s) ignored" if result["ignored_objects"] else "")
        + "\n"
        f"AP@0.5 per class: {per_class}\nat score >= {detector.score_threshold:.2f}: precision {at['precision']:.3f}, "
        f"recall {at['recall']:.3f} ({at['true_positives']} found, {at['false_positives']} false, {at['missed']} "
        f"missed)\nwrote {output}/: {', '.join(result['files'])}",
    )
    return 2 if failures else None


def _compare_exported(path, images, detector):
    """Largest box and score difference between the exported SavedModel's serve_bytes and Keras, over `images`."""
    import tensorflow as tf

    exported = tf.saved_model.load(str(path))
    box_difference = score_difference = 0.0
    for image_path in images:
        found = exported.signatures["serve_bytes"](image_bytes=tf.constant([Path(image_path).read_bytes()]))
        boxes, scores, _ = run_detector(detector, read_image(image_path))
        count = int(found["num_detections"][0])
        if count != len(scores):
            return {"images": len(images), "same_counts": False}
        if count:
            box_difference = max(box_difference, float(np.max(np.abs(found["boxes"][0, :count].numpy() - boxes))))
            score_difference = max(score_difference, float(np.max(np.abs(found["scores"][0, :count].numpy() - scores))))
    return {
        "images": len(images),
        "same_counts": True,
        "max_box_difference_px": box_difference,
        "max_score_difference": score_difference,
    }


# === Predict ===


def _write_detections(args, output, name, result):
    """The annotated image (`result.plot()`) and, with --save-txt, YOLO labels (fractions of the full-size image)."""
    from PIL import Image

    from dlapps.data.annotations import yolo_lines

    if not args.no_images:
        Image.fromarray(result.plot()).save(output / f"{name}.jpg", quality=92)
    if args.save_txt:
        (output / "labels").mkdir(exist_ok=True)
        lines = yolo_lines(result.boxes, result.classes, result.width, result.height)
        (output / "labels" / f"{name}.txt").write_text(lines)


def _detections_json(path, found, class_names, extra=None):
    boxes, scores, classes = found
    return {
        "path": str(path),
        **(extra or {}),
        "detections": [
            {
                "box": [round(float(v), 1) for v in box],
                "class": class_names[int(label)],
                "score": round(float(score), 4),
            }
            for box, score, label in zip(boxes, scores, classes, strict=True)
        ],
    }


def predict(args):
    from dlapps.cli.common import output_names, print_results, report_problems
    from dlapps.data.video import split_videos

    app = load_app(args)
    output = check_output_folder(args.output)
    videos, files, problems = split_videos(args.paths)
    failures = report_problems(args, PROG, problems)
    if files or videos:
        output.mkdir(parents=True, exist_ok=True)
    names = output_names([*files, *videos])

    def write(result):
        _write_detections(args, output, names[Path(result.source)], result)

    def text(result):
        return f"{result.source}: " + (", ".join(f"{v} {k}" for k, v in result.counts().items()) or "nothing found")

    failures += bool(print_results(args, app.predict_iter(files), text, len(files), "detecting", write))
    for video in videos:
        failures += _predict_video(args, app.detector, video, output, app.class_names, names[video])
    if not args.json and len(files) + len(videos) > failures and not (args.no_images and not args.save_txt):
        print(f"wrote {output}/", file=sys.stderr)
    return 2 if failures else None


def _predict_video(args, detector, path, output, class_names, name):
    """Frame by frame: an annotated video (mp4), with --json one object per frame, and with --save-txt one YOLO
    label file per frame (`labels/<video>_<frame>.txt`, frames counted from 0, as Ultralytics names them)."""
    from dlapps.data.annotations import yolo_lines
    from dlapps.data.video import transform_video
    from dlapps.plots import draw_detections

    frame_index = 0
    if args.save_txt:
        (output / "labels").mkdir(parents=True, exist_ok=True)

    def annotate(rgb):
        nonlocal frame_index
        found = run_detector(detector, rgb)
        if args.json:
            print(to_json(_detections_json(path, found, class_names, {"frame": frame_index})), flush=True)
        if args.save_txt:
            lines = yolo_lines(found[0], found[2], rgb.shape[1], rgb.shape[0])
            (output / "labels" / f"{name}_{frame_index}.txt").write_text(lines)
        frame_index += 1
        return draw_detections(rgb, found[0], found[2], found[1], class_names)

    target = None if args.no_images else output / f"{name}.mp4"
    progress = ProgressBar(0, path.name)
    try:
        frames = transform_video(path, target, annotate, on_frame=lambda index, total: progress.update())
    except ValueError as error:
        warn(PROG, f"error: {error}")
        return 1
    if not args.json:
        print(f"{path}: {frames} frames" + (f" -> {target}" if target else ""))
    return 0


# === Export ===


def export(args):
    import tensorflow as tf

    from dlapps.data.images import decode_image_bytes
    from dlapps.export import export_graph, path_size
    from dlapps.tasks.yolo_detector import postprocess

    detector, config = load_detector(args)
    default_name = {"saved_model": "detector_saved_model", "tflite": "detector.tflite", "onnx": "detector.onnx"}
    output = check_output_folder(
        args.output or default_output(args.model, "export", "detect") / default_name[args.format]
    )
    output.parent.mkdir(parents=True, exist_ok=True)

    @tf.function(input_signature=[tf.TensorSpec((1,), tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        image = decode_image_bytes(image_bytes[0])
        return detector.detect(image[None])

    info = {
        "class_names": config["class_names"],
        "input": "uint8 RGB (N, H, W, 3), any size (one per batch)",
        "outputs": "boxes (N, M, 4) xmin ymin xmax ymax in input pixels; scores; classes; num_detections",
        "score_threshold": detector.score_threshold,
        "iou_threshold": detector.iou_threshold,
        "max_detections": detector.max_detections,
    }
    detector.serve_bytes = serve_bytes
    serve = detector.detect
    if args.format in ("tflite", "onnx"):
        # The letterbox's antialiased resize (ScaleAndTranslate) is neither a TFLite, a Flex nor an ONNX op (tf2onnx
        # writes it, ONNX Runtime refuses the graph): these files take the letterboxed canvas
        # (dlapps.tasks.yolo_detector.letterbox) and return boxes in canvas pixels. NMS is inside, with TFLite builtin
        # ops only (see nms_one_image), so any TFLite runtime runs the file.
        size = detector.image_size

        @tf.function(input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32, name="canvas")])
        def serve(canvas):
            found = postprocess(detector.model(canvas, training=False), detector.anchors, detector.score_threshold,
                                detector.iou_threshold, detector.max_detections, detector.class_agnostic)  # fmt: skip
            return {**found, "boxes": tf.clip_by_value(found["boxes"] * size, 0.0, float(size))}

        info["input"] = f"float32 (1, {size}, {size}, 3) 0-255: the image letterboxed (fitted, centred on grey 127)"
        info["outputs"] = (
            "boxes (1, M, 4) xmin ymin xmax ymax in canvas pixels (image pixels: subtract the "
            "letterbox offset, divide by its scale, clip to the image); scores; classes; num_detections"
        )
    export_graph(detector, serve, serve_bytes, output, args.format, info)
    result = {"format": args.format, "path": str(output), "bytes": path_size(output)}
    emit(args, result, f"wrote {output} ({result['bytes'] / 1e6:.1f} MB)")


# === Anchors and convert ===


def anchors(args):
    from dlapps.metrics.detection import kmeans_anchors

    if args.image_size % 32:
        raise ValueError(f"--image-size must be a multiple of 32 (as train's). Received: {args.image_size}")
    records, _, _, _ = _read(args.data)
    sizes = box_sizes(records)
    curve = []
    for k in range(1, min(args.max_k, len(sizes)) + 1):
        curve.append({"k": k, "mean_iou": kmeans_anchors(sizes, k)[1]})
    chosen, mean_iou = kmeans_anchors(sizes, args.k)
    pixels = (chosen * args.image_size).round(1).tolist()
    result = {
        "boxes": len(sizes),
        "k": args.k,
        "anchors": chosen.tolist(),
        "anchors_px": pixels,
        "mean_iou": mean_iou,
        "mean_iou_by_k": curve,
    }
    text = [f"{len(sizes)} boxes; mean best IoU with k anchors (k-means, distance 1 - IoU):"]
    text += [f"  k={row['k']:>2}: {row['mean_iou']:.3f}" for row in curve]
    text.append(f"{args.k} anchors (width x height, pixels of a {args.image_size} input, letterboxed):")
    text.append("  " + ", ".join(f"{w:g}x{h:g}" for w, h in pixels))
    emit(args, result, "\n".join(text))


def convert(args):
    from dlapps.data.annotations import write_annotations

    records, class_names, kind, boxes = _read(args.data)
    output = check_output_folder(args.output)
    written = write_annotations(records, class_names, output, args.to)
    result = {"from": kind, "to": args.to, "images": len(records), "boxes": boxes, "output": str(written)}
    emit(args, result, f"{len(records)} images, {boxes} boxes: {kind.upper()} -> {args.to.upper()} in {written}")
