"""Command line of the object detector: `dlapps detect train|evaluate|predict|export|anchors|convert`."""

import argparse

from dlapps.apps.object_detector.config import DetectConfig
from dlapps.backbones import DETECTOR_BACKBONES
from dlapps.cli.common import Verb, add_beam_arguments, add_run_arguments
from dlapps.cli.types import fraction, non_negative_int, positive_float, positive_int
from dlapps.losses import OBJECTNESS_LOSSES

DEFAULTS = DetectConfig()

DESCRIPTION = (
    "A YOLO-style object detector (the course's detection week): a pretrained backbone and one S x S grid of anchor "
    "boxes per scale, trained on your own annotated photos (Pascal VOC XML, YOLO txt or COCO JSON), with per-class "
    "non-max suppression inside the model and exports that answer as predict does."
)
DATA_HELP = "a folder of images with Pascal VOC .xml, YOLO labels/ + data.yaml, or one COCO .json (or that file)"


def _add_model(parser):
    parser.add_argument("--model", default="fruit", help="detector folder, or a preset: fruit, raccoon")


def _add_thresholds(parser):
    parser.add_argument(
        "--score-threshold",
        type=fraction,
        default=None,
        help="keep boxes whose objectness x class probability is at least this (the course uses 0.6; default: the "
        "value tuned on dev and stored with the model)",
    )
    parser.add_argument(
        "--iou-threshold",
        type=fraction,
        default=None,
        help="non-max suppression drops a box overlapping a better one of its class by more than this IoU (the "
        "course's 0.5; default: the model's)",
    )
    parser.add_argument(
        "--max-detections",
        "--max-boxes",
        dest="max_detections",
        type=positive_int,
        default=None,
        help="most boxes per image (the course's 10; default: the model's)",
    )
    parser.add_argument("--class-agnostic", action="store_true", help="one NMS over all classes, not one per class")


def add_train_arguments(parser):
    parser.add_argument("data", help=DATA_HELP)
    parser.add_argument("--output", required=True, help="the new model's folder (also where --resume looks)")
    parser.add_argument(
        "--image-size", type=positive_int, default=DEFAULTS.image_size, help="square input side in pixels (x32)"
    )
    parser.add_argument(
        "--backbone",
        default=DEFAULTS.backbone,
        choices=DETECTOR_BACKBONES,
        help="efficientnet_lite0 has offline ImageNet weights, the next four download theirs, small_resnet has none "
        "(a compact ResNet for --weights none)",
    )
    parser.add_argument(
        "--weights", default=DEFAULTS.weights, help="backbone weights: imagenet, none, or a weights file"
    )
    parser.add_argument(
        "--anchors", type=positive_int, default=DEFAULTS.anchors, help="anchor boxes from k-means (3 per scale)"
    )
    # Defaults filled in by the handler (DetectConfig), so that the first spelling given with these is caught.
    parser.add_argument(
        "--head-epochs", type=non_negative_int, default=None,
        help=f"phase 1: the neck and head on the frozen backbone (0: skip) (default: {DEFAULTS.head_epochs})",
    )  # fmt: skip
    parser.add_argument(
        "--fine-tune-epochs", type=non_negative_int, default=None,
        help=f"phase 2: the whole network, most epochs (early stopping) (default: {DEFAULTS.fine_tune_epochs})",
    )  # fmt: skip
    # The first spelling, both phases at once: still read, no longer shown.
    parser.add_argument(
        "--epochs", type=non_negative_int, nargs=2, default=None, metavar=("HEAD", "FINE_TUNE"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--learning-rate",
        type=positive_float,
        nargs=2,
        default=DEFAULTS.learning_rate,
        metavar=("HEAD", "FINE_TUNE"),
        help="Adam's learning rates of the two phases (cosine decay)",
    )
    parser.add_argument(
        "--fine-tune-fraction",
        type=fraction,
        default=DEFAULTS.fine_tune_fraction,
        help="top fraction of the backbone unfrozen",
    )
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size, help="images per step")
    parser.add_argument(
        "--monitor", default=DEFAULTS.monitor, choices=["map", "map50"],
        help="dev measure for the best epoch and early stopping: map (mAP@0.5:0.95, rewards tight boxes) or map50",
    )  # fmt: skip
    parser.add_argument(
        "--box-gain", type=positive_float, default=DEFAULTS.box_gain,
        help="weight of the box loss (1 - CIoU) against objectness and classes (YOLOv5: 0.05)",
    )  # fmt: skip
    parser.add_argument(
        "--objectness-loss", default=DEFAULTS.objectness_loss, choices=OBJECTNESS_LOSSES,
        help="varifocal (VarifocalNet: easy background cells weigh little) or bce (YOLOv5: every cell alike)",
    )  # fmt: skip
    parser.add_argument(
        "--patience", type=positive_int, default=DEFAULTS.patience, help="early stopping on --monitor (epochs)"
    )
    parser.add_argument(
        "--dev-fraction", type=fraction, default=DEFAULTS.dev_fraction, help="training images held out as dev"
    )
    parser.add_argument(
        "--dev",
        default=None,
        help="a separate dev data folder instead of --dev-fraction (for a YOLO set whose data.yaml names train: "
        "and val: folders, its val: by default)",
    )
    parser.add_argument("--no-augment", action="store_true", help="no zoom, shift, flip or colour jitter")
    parser.add_argument(
        "--mosaic", type=fraction, default=DEFAULTS.mosaic, metavar="RATE",
        help="fraction of training images made mosaics of four (YOLOv4); off: it lowered fruit dev mAP",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="dev split, shuffling and augmentation")
    parser.add_argument(
        "--strategy", default="default", choices=["default", "mirrored"],
        help="tf.distribute strategy: one device, or every local GPU (mirrored)",
    )  # fmt: skip
    add_run_arguments(parser)


def add_evaluate_arguments(parser):
    parser.add_argument("data", help=DATA_HELP + " (with the model's class names)")
    _add_model(parser)
    _add_thresholds(parser)
    parser.add_argument(
        "--output", default=None, help="PR curve and gallery (default: runs/detect/evaluate, or beside your own model)"
    )
    parser.add_argument("--exported", default=None, help="also run this exported SavedModel and compare")


def add_predict_arguments(parser):
    parser.add_argument("paths", nargs="+", help="image files, folders, or video files (.mp4, .avi, .mov, .mkv)")
    _add_model(parser)
    _add_thresholds(parser)
    parser.add_argument(
        "--output", default=None,
        help="annotated images (and videos) go here (default: runs/detect/predict, or predict2, predict3, ... when "
        "that holds an earlier run's)",
    )  # fmt: skip
    parser.add_argument("--save-txt", action="store_true", help="also write YOLO label files (labels/NAME.txt)")
    parser.add_argument("--no-images", action="store_true", help="do not write annotated images")
    add_beam_arguments(parser)


def add_export_arguments(parser):
    _add_model(parser)
    parser.add_argument("--format", default="saved_model", choices=["saved_model", "tflite", "onnx"], help="format")
    parser.add_argument("--output", default=None, help="file or folder (default: runs/detect/export/...)")
    _add_thresholds(parser)


def add_anchors_arguments(parser):
    parser.add_argument("data", help=DATA_HELP)
    parser.add_argument("--max-k", type=positive_int, default=12, help="print the mean best IoU for k = 1 .. max-k")
    parser.add_argument("--k", type=positive_int, default=9, help="the anchors to print")
    parser.add_argument("--image-size", type=positive_int, default=320, help="anchors in pixels of this input")


def add_convert_arguments(parser):
    parser.add_argument("data", help=DATA_HELP)
    parser.add_argument("--to", required=True, choices=["voc", "yolo", "coco"], help="the format to write")
    parser.add_argument("--output", required=True, help="folder for the converted annotations")


VERBS = [
    Verb(
        "train", "train a detector on annotated images", add_train_arguments, "dlapps.apps.object_detector.train:train"
    ),
    Verb(
        "evaluate",
        "mAP@0.5 and mAP@0.5:0.95 (pycocotools), per-class AP, PR curve, worst images",
        add_evaluate_arguments,
        "dlapps.apps.object_detector.evaluate:evaluate",
    ),
    Verb(
        "predict",
        "detect objects in images, folders and videos",
        add_predict_arguments,
        "dlapps.apps.object_detector.app:predict",
    ),
    Verb(
        "export",
        "SavedModel / TFLite / ONNX with letterbox and NMS inside",
        add_export_arguments,
        "dlapps.apps.object_detector.evaluate:export",
    ),
    Verb(
        "anchors",
        "anchor boxes by k-means (1 - IoU distance) and the mean best IoU against k",
        add_anchors_arguments,
        "dlapps.apps.object_detector.data_tools:anchors",
    ),
    Verb(
        "convert",
        "convert annotations between VOC, YOLO and COCO",
        add_convert_arguments,
        "dlapps.apps.object_detector.data_tools:convert",
    ),
]
