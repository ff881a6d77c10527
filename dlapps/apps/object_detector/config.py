"""Defaults of the object detector, next to the app that uses them: `dlapps detect train` and its thresholds.

The command line and `ObjectDetector.train(..., **options)` take these defaults (the options have the same names);
the shipped fruit and raccoon models were trained with them (saved_models/*/MODEL_CARD.md gives the commands).
"""

from dataclasses import asdict, dataclass, field


@dataclass
class DetectConfig:
    """A training run's recipe (written to config.json beside the model) and the thresholds of a new model."""

    image_size: int = 320  # square input side in pixels, a multiple of 32
    backbone: str = "efficientnet_lite0"
    weights: str = "imagenet"
    anchors: int = 9  # k-means anchor boxes, 3 per scale
    head_epochs: int = 25  # the neck and head on the frozen backbone
    fine_tune_epochs: int = 50  # then the whole network (early stopping)
    learning_rate: list = field(default_factory=lambda: [2e-3, 5e-4])  # Adam, cosine decay, per phase
    fine_tune_fraction: float = 1.0
    batch_size: int = 16
    # The dev measure that picks the best epoch: mAP@0.5 ("map50", the shipped models') or mAP@0.5:0.95 ("map").
    # Measured once on fruit (README): "map" gave dev mAP@0.5:0.95 0.536 against 0.509 but mAP@0.5 0.866 against 0.891.
    monitor: str = "map50"
    box_gain: float = 0.05  # the box loss's weight (YOLOv5's hyp.scratch-low)
    # "bce" (YOLOv5) or "varifocal" (VarifocalNet). Measured once on fruit (README): varifocal learnt faster but ended
    # at dev mAP@0.5:0.95 0.464 against 0.509.
    objectness_loss: str = "bce"
    patience: int = 12
    dev_fraction: float = 0.15
    mosaic: float = 0.0
    seed: int = 0
    # Stored with a new model until training tunes score_threshold on dev (best F1 at IoU 0.5).
    score_threshold: float = 0.5
    iou_threshold: float = 0.5
    max_detections: int = 100

    def thresholds(self):
        return {key: getattr(self, key) for key in ("score_threshold", "iou_threshold", "max_detections")}

    def to_dict(self):
        return asdict(self)
