"""Defaults of the face-verification app, next to the app that uses them."""

from dataclasses import asdict, dataclass


@dataclass
class FaceConfig:
    """A face model: backbone, weights, and the decision rule calibrated on dev pairs; written to config.json."""

    backbone: str = "dlib"
    weights: str = "dlib"
    # Same person when the distance between unit embeddings is at most this (calibrated: see the model card).
    threshold: float = 0.6
    # P(same | distance) = sigmoid(confidence_bias + confidence_slope * distance), fitted on the same pairs.
    confidence_bias: float = 6.0
    confidence_slope: float = -10.0
    # identify: a face is named only this close to an enrolled person (stricter than `threshold`: a gallery of many
    # people gives a stranger many chances); the distance at a false accept rate of 1e-3 on the calibration pairs.
    open_set_threshold: float | None = None
    # A face's embedding is the unit mean of its chip's and its mirrored chip's (the flip test-time augmentation of
    # face-recognition evaluations, e.g. ArcFace's); thresholds are calibrated with the same rule. Measured on the
    # shipped model: open-set identification on dev went from 0.91 known / 0.91 strangers to 0.95 / 0.92.
    flip: bool = False
    # Training (dlapps faces train).
    margin: float = 0.2
    mining: str = "semi_hard"
    people_per_batch: int = 8
    images_per_person: int = 4
    epochs: int = 10
    # CosFace epochs before the triplet loss (dlapps.losses.cosface): measured on Lite0, see the model card.
    warmup_epochs: int = 0
    head_epochs: int = 3  # an ImageNet backbone's projection alone first, on the frozen base
    fine_tune_fraction: float = 1.0  # then this top part of its base (batch norm stays frozen)
    jitter: float = 0.0  # training chips shifted and zoomed by up to this fraction of the side
    steps_per_epoch: int = 50
    learning_rate: float = 1e-4
    patience: int = 3  # a phase stops after this many epochs without a better dev accuracy
    dev_fraction: float = 0.15
    seed: int = 7

    def to_dict(self):
        return asdict(self)
