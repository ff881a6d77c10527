"""The object detector's shared parts and `dlapps detect predict`; the other verbs are `train.py`, `evaluate.py`
(evaluate, export) and `data_tools.py` (anchors, convert). The library parts: readers (`dlapps/data/annotations.py`),
the pipeline (`dlapps/data/detection.py`), the network, targets, loss and NMS (`dlapps/tasks/yolo_detector.py`), mAP
(`dlapps/metrics/detection.py`) and the phase loop (`dlapps/training.py`)."""

from pathlib import Path

import numpy as np

from dlapps.apps.object_detector.config import DetectConfig
from dlapps.cli.common import ProgressBar, check_output_folder, emit, say, warn
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


def _warning(message):
    warn(PROG, f"warning: {message}")


def _read_quietly(data, class_names):
    from dlapps.data.annotations import read_detection_folder

    return read_detection_folder(data, class_names, on_warning=_warning)


def _splits(data):
    """The data set's own splits (`dlapps.data.annotations.data_splits`), its warnings on stderr."""
    from dlapps.data.annotations import data_splits

    return data_splits(data, on_warning=_warning)


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


# === Predict ===


def _write_detections(args, output, name, result):
    """The annotated image (`result.plot()`) and, with --save-txt, YOLO labels (fractions of the full-size image);
    their paths go into the result's record (`output`, `label_file`)."""
    from PIL import Image

    from dlapps.data.annotations import yolo_lines

    if not args.no_images or args.save_txt:  # made at the first file written: a run of failures leaves none
        output.mkdir(parents=True, exist_ok=True)
    if not args.no_images:
        Image.fromarray(result.plot()).save(output / f"{name}.jpg", quality=92)
        result.output = str(output / f"{name}.jpg")
    if args.save_txt:
        (output / "labels").mkdir(exist_ok=True)
        lines = yolo_lines(result.boxes, result.classes, result.width, result.height)
        (output / "labels" / f"{name}.txt").write_text(lines)
        result.label_file = str(output / "labels" / f"{name}.txt")


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
    from dlapps.cli.common import new_run_folder, output_names, print_results, report_problems
    from dlapps.data.video import split_videos

    app = load_app(args)
    output = check_output_folder(args.output or new_run_folder("runs/detect/predict"))
    videos, files, problems = split_videos(args.paths)
    failures = report_problems(args, PROG, problems)
    names = output_names([*files, *videos])

    def write(result):
        _write_detections(args, output, names[Path(result.source)], result)

    def text(result):
        return f"{result.source}: " + (", ".join(f"{v} {k}" for k, v in result.counts().items()) or "nothing found")

    failures += bool(print_results(args, app.predict_iter(files), text, len(files), "detecting", write))
    for video in videos:
        failures += _predict_video(args, app.detector, video, output, app.class_names, names[video])
    if len(files) + len(videos) > failures and not (args.no_images and not args.save_txt):
        say(args, f"wrote {output}/")
    return 2 if failures else None


def _predict_video(args, detector, path, output, class_names, name):
    """Frame by frame: an annotated video (mp4), with --json one object per frame, and with --save-txt one YOLO
    label file per frame (`labels/<video>_<frame>.txt`, frames counted from 0, as Ultralytics names them)."""
    from dlapps.data.annotations import yolo_lines
    from dlapps.data.video import transform_video
    from dlapps.plots import draw_detections

    frame_index = 0
    if not args.no_images:
        output.mkdir(parents=True, exist_ok=True)
    if args.save_txt:
        (output / "labels").mkdir(parents=True, exist_ok=True)

    def annotate(rgb):
        nonlocal frame_index
        found = run_detector(detector, rgb)
        if args.json:
            emit(args, _detections_json(path, found, class_names, {"frame": frame_index}), "")
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
    say(args, f"{path}: {frames} frames" + (f" -> {target}" if target else ""))
    return 0
