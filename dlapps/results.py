"""What the apps return: one small class per kind of answer, each with `.to_dict()` (exactly the record `--json`
prints) and, where a picture fits, `.plot()` (an annotated RGB uint8 array).

Boxes are [x_min, y_min, x_max, y_max] in the original image's pixels (float, rounded to 0.1 px in `to_dict`).
"""

import math
from dataclasses import dataclass, field

import numpy as np


class NamedBytes(bytes):
    """Encoded image bytes that keep a name (an upload's file name), so records and messages name the file."""

    def __new__(cls, data, name=None):
        named = super().__new__(cls, data)
        named.name = name
        return named


def input_name(source):
    """How records and messages name an input: a path as given, a `NamedBytes`' name, else its kind ("<bytes>",
    "<ndarray>", "<Image>"); None for None."""
    if source is None or isinstance(source, str):
        return source
    if hasattr(source, "__fspath__"):
        return str(source)
    if isinstance(source, bytes):
        return getattr(source, "name", None) or "<bytes>"
    return f"<{type(source).__name__}>"


_source = input_name


def finite(value):
    """NaN and infinities become None (JSON has no NaN); NumPy scalars become Python numbers; containers walked."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


@dataclass
class Failure:
    """An input that could not be processed: `predict_iter` yields one and goes on with the next input.

    Attributes:
        source: the input (a path as given, or "<bytes>", "<ndarray>").
        error: the message, naming the file and the problem.
        kind: the exception's class name (`ImageReadError`, `NoFaceError`, ...).
    """

    source: object
    error: str
    kind: str = "ImageReadError"
    ok = False

    def to_dict(self):
        return {"path": _source(self.source), "error": self.error, "kind": self.kind}


@dataclass
class Classification:
    """A classifier's answer for one image.

    Attributes:
        label: the predicted class name.
        probabilities: {class name: probability}, highest first.
        source: the input.
        threshold: a binary classifier's decision threshold on P(positive) (None for a multi-class one).
        positive: a binary classifier's positive class ("cat"); None for a multi-class one.
        top_k: how many classes a multi-class record lists.
        extra: further fields of the record (the zero-shot ImageNet top class).
    """

    label: str
    probabilities: dict
    source: object = None
    threshold: float | None = None
    positive: str | None = None
    top_k: int = 5
    extra: dict = field(default_factory=dict)
    ok = True

    @property
    def probability(self):
        """A binary classifier's P(positive), as the CLI reports P(cat); else the predicted class's probability."""
        return self.probabilities[self.positive or self.label]

    def to_dict(self):
        record = {"path": _source(self.source), "label": self.label, "probability": self.probability}
        if self.positive:
            record["threshold"] = self.threshold
        else:
            top = list(self.probabilities.items())[: self.top_k]
            record["top_k"] = [{"label": name, "probability": p} for name, p in top]
        return finite({**record, **self.extra})


@dataclass
class Detections:
    """A detector's answer for one image.

    Attributes:
        boxes: float32 (M, 4) [x_min, y_min, x_max, y_max] in the original image's pixels.
        scores: float32 (M,), 0-1.
        classes: int (M,) class indices into `class_names`.
        class_names: the detector's class names.
        width, height: the original image's size in pixels.
        image: the decoded RGB uint8 (H, W, 3) image (for `plot`).
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    class_names: list
    width: int
    height: int
    source: object = None
    image: np.ndarray | None = field(default=None, repr=False)
    # Files the command line wrote for this image (the annotated picture; with --save-txt its YOLO labels).
    output: str | None = None
    label_file: str | None = None
    ok = True

    def __len__(self):
        return len(self.scores)

    def __iter__(self):
        """Each box as (box [x_min, y_min, x_max, y_max] pixels, class name, score), best first."""
        return iter(zip(self.boxes.tolist(), self.labels, self.scores.tolist(), strict=True))

    @property
    def labels(self):
        """The class name of each box."""
        return [self.class_names[int(c)] for c in self.classes]

    def counts(self):
        """{class name: boxes found}, in the order first found."""
        counts = {}
        for name in self.labels:
            counts[name] = counts.get(name, 0) + 1
        return counts

    def to_dict(self):
        return finite({
            "path": _source(self.source), "width": self.width, "height": self.height,
            "detections": [{"box": [round(float(v), 1) for v in box], "class": name, "score": round(float(score), 4)}
                           for box, name, score in zip(self.boxes, self.labels, self.scores, strict=True)],
            **({"output": self.output} if self.output else {}),
            **({"label_file": self.label_file} if self.label_file else {}),
        })  # fmt: skip

    def plot(self):
        """The image with its boxes, class names and scores drawn: RGB uint8 (H, W, 3) (a JPEG above 4,096 px at the
        reduced scale it was decoded at)."""
        from dlapps.plots import draw_detections

        scale = self.image.shape[1] / self.width if self.width else 1.0
        return draw_detections(self.image, self.boxes * scale, self.classes, self.scores, self.class_names)


@dataclass
class Verification:
    """Are two faces the same person: ||f(a) - f(b)|| against the model's threshold.

    Attributes:
        distance: the Euclidean distance of the two unit embeddings (0-2).
        threshold: same person when distance <= threshold.
        confidence: the calibrated probability of the verdict (0.5-1).
        box_a, box_b: the faces used, (x, y, width, height) pixels (YuNet's box).
        faces_a, faces_b: how many faces each image showed (the largest is used).
        chips: the two aligned face chips the network saw, RGB uint8 (150, 150, 3) each (not in `to_dict`).
    """

    distance: float
    threshold: float
    confidence: float
    box_a: list
    box_b: list
    source_a: object = None
    source_b: object = None
    faces_a: int = 1
    faces_b: int = 1
    chips: tuple | None = field(default=None, repr=False)
    ok = True

    @property
    def same_person(self):
        return self.distance <= self.threshold

    def to_dict(self):
        return finite({
            "image_a": _source(self.source_a), "image_b": _source(self.source_b), "distance": self.distance,
            "threshold": self.threshold, "same_person": bool(self.same_person), "confidence": self.confidence,
            "box_a": [round(float(v), 1) for v in self.box_a], "box_b": [round(float(v), 1) for v in self.box_b],
            "faces_a": self.faces_a, "faces_b": self.faces_b,
        })  # fmt: skip


@dataclass
class FaceEmbedding:
    """One face's embedding: float32 (128,) unit vector, its box (x, y, width, height) pixels, and how many faces
    the image showed (the largest is used)."""

    embedding: np.ndarray = field(repr=False)
    box: list
    source: object = None
    faces: int = 1
    ok = True

    def to_dict(self):
        return finite({"path": _source(self.source), "box": [round(float(v), 1) for v in self.box],
                       "faces": self.faces, "embedding": [float(v) for v in self.embedding]})  # fmt: skip


@dataclass
class Identification:
    """Who one face is, against a gallery: the closest person, or "unknown" above the threshold.

    Attributes:
        name: the person's name, or "unknown".
        distance: the distance to the closest person.
        threshold: the open-set threshold used.
        box: the face, (x, y, width, height) pixels (YuNet's box).
        top_k: [(name, distance)], closest first.
        ambiguous: every enrolled person within the threshold when there are two or more, closest first (the face
            is named after the closest, but it could be either); empty otherwise.
    """

    name: str
    distance: float
    threshold: float
    box: list
    top_k: list
    source: object = None
    ambiguous: list = field(default_factory=list)
    ok = True

    def to_dict(self):
        return finite({
            "path": _source(self.source), "name": self.name, "distance": self.distance, "threshold": self.threshold,
            "box": [round(float(v), 1) for v in self.box],
            "top_k": [{"name": name, "distance": distance} for name, distance in self.top_k],
            "ambiguous": list(self.ambiguous),
        })  # fmt: skip


@dataclass
class Stylised:
    """A stylised image: RGB uint8 (H, W, 3) in `image`; `style` names the painting; `output` is the file `save`
    wrote (None before)."""

    image: np.ndarray = field(repr=False)
    style: str
    source: object = None
    output: str | None = None
    ok = True

    def to_dict(self):
        record = {"content": _source(self.source), "style": self.style, "width": int(self.image.shape[1]),
                  "height": int(self.image.shape[0])}  # fmt: skip
        return {**record, "output": self.output} if self.output else record

    def plot(self):
        return self.image

    def save(self, path):
        """Write the image (format from the extension) and return the path."""
        from PIL import Image

        Image.fromarray(self.image).save(path)
        self.output = str(path)
        return path


@dataclass
class Report:
    """What `train`, `evaluate` and `export` return: the verb's `--json` object, as attributes and `to_dict()`."""

    values: dict

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key):
        return self.values[key]

    def to_dict(self):
        return finite(dict(self.values))
