"""`ObjectDetector`: the YOLO-style detector, from Python.

```python
import dlapps
detector = dlapps.ObjectDetector.from_preset("fruit")       # or .from_folder("runs/mine"), or dlapps.load(path)
result = detector.predict("photo.jpg")                        # boxes in image pixels, class names, scores
result.to_dict(); result.plot()                               # the --json record; an annotated RGB array
```
"""

import numpy as np

from dlapps.apps.base import App, to_image
from dlapps.results import Detections


class ObjectDetector(App):
    """A detector folder (`dlapps detect train`): letterbox, network, box decoding and per-class NMS, in one traced
    function (`dlapps.tasks.yolo_detector.Detector`, the same rule as every export).

    Args:
        model: the Keras detector (raw grid outputs).
        config: the folder's config.json (`anchors`, `class_names` and the stored thresholds).
        folder: the model folder.
        score_threshold: keep boxes whose objectness x class probability is at least this (0-1; None: the model's).
        iou_threshold: NMS drops a box overlapping a better one of its class by more than this IoU (None: the
            model's).
        max_detections: most boxes per image (None: the model's).
        class_agnostic: one NMS over all classes instead of one per class.
    """

    app = "detect"
    cli = "dlapps.cli.detect"
    model_option = "model"

    def __init__(self, model, config, folder=None, score_threshold=None, iou_threshold=None, max_detections=None,
                 class_agnostic=False):  # fmt: skip
        super().__init__(model, config, folder)
        if "anchors" not in self.config:
            raise ValueError(f"{folder}: not a detector folder (its config.json has no anchors)")
        self.class_names = list(self.config["class_names"])
        self.class_agnostic = bool(class_agnostic)
        self._detectors = {}  # one traced detector per thresholds asked for
        self.detector = self._detector(score_threshold, iou_threshold, max_detections)

    def made_with(self, verb):
        """The instance's thresholds and NMS rule, which `evaluate` and `export` take as `predict` does."""
        return {"score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold,
                "max_detections": self.max_detections, "class_agnostic": self.class_agnostic}  # fmt: skip

    def _detector(self, score_threshold=None, iou_threshold=None, max_detections=None):
        """The `Detector` for these thresholds (None: the instance's, at first the model's), traced once each.

        Raises:
            ValueError: a threshold outside 0-1, or max_detections under 1.
        """
        from dlapps.tasks.yolo_detector import Detector

        default = getattr(self, "detector", None)
        score = score_threshold if score_threshold is not None else (default.score_threshold if default else
                                                                      self.config["score_threshold"])  # fmt: skip
        iou = iou_threshold if iou_threshold is not None else (default.iou_threshold if default else
                                                                self.config["iou_threshold"])  # fmt: skip
        most = max_detections or (default.max_detections if default else self.config["max_detections"])
        for name, value in (("score_threshold", score), ("iou_threshold", iou)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name}: expected a number from 0 to 1; received {value!r}")
        if int(most) < 1:
            raise ValueError(f"max_detections: expected a whole number of at least 1; received {most!r}")
        key = (float(score), float(iou), int(most))
        if key not in self._detectors:
            self._detectors[key] = Detector(self.model, self.config["anchors"], *key, self.class_agnostic)
        return self._detectors[key]

    @property
    def score_threshold(self):
        return self.detector.score_threshold

    @property
    def iou_threshold(self):
        return self.detector.iou_threshold

    @property
    def max_detections(self):
        return self.detector.max_detections

    def detect_array(self, image, detector=None):
        """Detections of one RGB uint8 (H, W, 3) array, as (boxes (M, 4) float32 pixels, scores (M,), classes (M,))."""
        return (detector or self.detector).detect_one(image)

    def predict(self, image, score_threshold=None, iou_threshold=None, max_detections=None):
        """The objects in one image (a path, bytes, a PIL image or an (H, W, 3) uint8 array): `Detections`, boxes
        [x_min, y_min, x_max, y_max] in the original image's pixels. Thresholds given here apply to this call
        (None: the instance's; see the class).

        Raises:
            ImageReadError: the input cannot be read (the message names it).
        """
        pixels = to_image(image)
        detector = self._detector(score_threshold, iou_threshold, max_detections)
        return self._detections(image, pixels, *self.detect_array(pixels, detector))

    def predict_batch(self, images, score_threshold=None, iou_threshold=None, max_detections=None):
        """`predict` for several images of any sizes in one network call (each letterboxed alone, the canvases
        batched): a list of `Detections`, equal to `predict`'s up to the float rounding of a larger batch.

        Raises:
            ImageReadError: an input cannot be read (the message names it).
        """
        options = (score_threshold, iou_threshold, max_detections)
        return self.detect_prepared([self.prepare(image, *options) for image in images])

    def prepare(self, image, score_threshold=None, iou_threshold=None, max_detections=None):
        """The per-image half of `predict_batch` (decoding, thresholds checked, letterbox): an opaque tuple for
        `detect_prepared`. The server prepares each request in its own thread and batches the network calls.

        Raises:
            ImageReadError: the input cannot be read; ValueError: a threshold out of range.
        """
        pixels = to_image(image)
        detector = self._detector(score_threshold, iou_threshold, max_detections)
        return image, pixels, detector, detector.letterbox_one(pixels)

    def detect_prepared(self, prepared):
        """`Detections` for a list of `prepare` results, one network call per set of thresholds."""
        import tensorflow as tf

        results = [None] * len(prepared)
        groups = {}
        for index, item in enumerate(prepared):
            groups.setdefault(id(item[2]), []).append(index)
        for indices in groups.values():
            detector = prepared[indices[0]][2]
            canvases, scales, pads = (tf.stack([prepared[i][3][part] for i in indices]) for part in range(3))
            sizes = tf.constant([prepared[i][1].shape[:2] for i in indices], tf.float32)
            found = detector.detect_letterboxed(canvases, scales, pads, sizes)
            for row, index in enumerate(indices):
                count = int(found["num_detections"][row])
                arrays = (found[key][row, :count].numpy() for key in ("boxes", "scores", "classes"))
                results[index] = self._detections(prepared[index][0], prepared[index][1], *arrays)
        return results

    def _detections(self, image, pixels, boxes, scores, classes):
        """`Detections` of one input from its decoded pixels' boxes: a JPEG above MAX_DECODED_SIDE, decoded at 1/2,
        1/4 or 1/8 scale, has its boxes taken back to its full-size pixels."""
        import os

        from dlapps.data.images import MAX_DECODED_SIDE, full_size

        height, width = pixels.shape[:2]
        if max(height, width) * 2 > MAX_DECODED_SIDE and isinstance(image, str | bytes | os.PathLike):
            width, height = full_size(image) or (width, height)
            boxes = (
                boxes
                * np.array([width, height, width, height], np.float32)
                / np.array([pixels.shape[1], pixels.shape[0]] * 2, np.float32)
            )
        return Detections(boxes, scores, classes, self.class_names, width, height, image, pixels)

    def explain(self, detections):
        """The course's picture of the grid behind `detections` (this detector's `Detections`): the letterboxed input
        square, each stride's S x S grid, and for each box the cell holding its centre and the anchor of best shape
        IoU, which is the cell and anchor the training rule (`encode_targets`) makes responsible for such a box.

        Returns:
            a dict, every box [x_min, y_min, x_max, y_max] in the original image's pixels: `input_size` (pixels of
            the square), `square` (where it lies; the letterbox padding falls outside the image), `scales`
            ([{stride, cells: S, cell_size}]) and `boxes` ([{scale, cell: [row, column], cell_box, anchor_box}], in
            the order of the detections).
        """
        from dlapps.tasks.yolo_detector import STRIDES, letterbox_geometry, split_anchors

        size = self.detector.image_size
        scale, _, (pad_y, pad_x) = letterbox_geometry(detections.height, detections.width, size)
        scale, pad = float(scale), np.array([int(pad_x), int(pad_y)] * 2)

        def to_image(canvas_box):
            return [round(float(v), 1) for v in (np.asarray(canvas_box, np.float64) - pad) / scale]

        groups = split_anchors(self.config["anchors"])
        anchors = np.concatenate(groups)
        boxes = []
        for box in np.asarray(detections.boxes, np.float64).reshape(-1, 4):
            canvas = box * scale + pad
            wh = (canvas[2:] - canvas[:2]) / size
            centre = (canvas[:2] + canvas[2:]) / 2
            overlap = np.prod(np.minimum(wh[None], anchors), axis=1)
            shape_iou = overlap / (np.prod(wh) + np.prod(anchors, axis=1) - overlap)
            best = int(np.argmax(shape_iou))
            level = best // len(groups[0])
            stride = STRIDES[level]
            column, row = np.clip((centre // stride).astype(int), 0, size // stride - 1)
            half = anchors[best] * size / 2
            boxes.append({
                "scale": level, "cell": [int(row), int(column)],
                "cell_box": to_image([column * stride, row * stride, (column + 1) * stride, (row + 1) * stride]),
                "anchor_box": to_image([*(centre - half), *(centre + half)]),
            })  # fmt: skip
        return {
            "input_size": size,
            "square": to_image([0, 0, size, size]),
            "scales": [{"stride": s, "cells": size // s, "cell_size": round(s / scale, 2)} for s in STRIDES],
            "boxes": boxes,
        }
