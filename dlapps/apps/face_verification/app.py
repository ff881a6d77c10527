"""Face verification and recognition, in the course's order: detect and align, embed, compare (verify), look up a
gallery (enroll, identify), measure (evaluate, calibrate), deploy (export). This module holds the face pipeline and
`verify`; `people.py` reads people's photos and runs enroll, identify and gallery; `evaluate.py` evaluate, calibrate
and export; `train.py` train.

A face becomes a 150x150 chip (YuNet's five landmarks mapped onto dlib's template), the chip an L2-normalised
128-D embedding f(x); two faces are the same person when ||f(a) - f(b)|| is at most the model's threshold.
"""

import json
from pathlib import Path

import numpy as np

from dlapps.apps.face_verification.config import FaceConfig
from dlapps.cli.common import (
    ProgressBar,
    emit,
    say,
    warn,
)
from dlapps.data.faces import NoFaceError, read_face_chips
from dlapps.data.images import ImageReadError
from dlapps.tasks.face_embedder import build_face_embedder, model_identity

PROG = "dlapps faces"
APP = "faces"


# === Model ===


class FaceModel:
    """An embedding model folder: config.json (backbone, weights, threshold), and model.keras once trained."""

    def __init__(self, model_dir):
        import keras

        folder = Path(model_dir)
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise ValueError(f"{folder}: not a face model folder (no config.json); train one or pass another --model")
        saved = json.loads(config_file.read_text())
        if saved.get("app") != APP:
            raise ValueError(f"{folder}: this model was made by dlapps {saved.get('app', 'another app')}, not {PROG}")
        self.folder = folder
        self.config = FaceConfig(**{k: v for k, v in saved.items() if k in FaceConfig().to_dict()})
        if (folder / "model.keras").is_file():
            import dlapps.backbones.dlib_resnet  # noqa: F401  (registers dlib's layers before loading)

            self.model = keras.saving.load_model(folder / "model.keras", compile=False)
        else:
            self.model = build_face_embedder(self.config.backbone, self.config.weights)
        # The embedding rule is part of the identity: a gallery of plain embeddings refuses flipped ones.
        self.identity = model_identity(self.model) + ("+flip" if self.config.flip else "")
        self._forward = None

    def forward(self, chips):
        """The embedding rule as a TF graph: float32 (n, 150, 150, 3) 0-255 chips to (n, d) unit embeddings; with
        `config.flip`, the unit mean of each chip's and its mirror image's (what `embed` and every export compute)."""
        import tensorflow as tf

        embeddings = self.model(chips, training=False)
        if self.config.flip:
            mirrored = self.model(tf.reverse(chips, axis=[2]), training=False)
            embeddings = tf.math.l2_normalize(embeddings + mirrored, axis=-1)
        return embeddings

    def embed(self, chips):
        """(n, 150, 150, 3) uint8 chips to (n, d) float32 unit embeddings (`forward` as one traced function, batches
        of 32: an eager Keras call cost 90 ms a face more than the network)."""
        import tensorflow as tf

        if self._forward is None:
            self._forward = tf.function(
                self.forward, input_signature=[tf.TensorSpec((None, *self.model.input_shape[1:]), tf.float32)]
            )
        chips = np.asarray(chips, np.float32)
        outputs = [np.asarray(self._forward(chips[i : i + 32])) for i in range(0, len(chips), 32)]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.model.output_shape[-1]), np.float32)

    def confidence(self, distance):
        """P(same person | distance), from the logistic fitted on the calibration pairs."""
        z = self.config.confidence_bias + self.config.confidence_slope * distance
        return float(1.0 / (1.0 + np.exp(-z)))


def find_faces(files, all_faces=False, on_error=None):
    """[(path, face, chip)] for the largest face of each file (every face with `all_faces`), with a progress bar.

    Files that cannot be read or show no face go to `on_error(path, error)`.
    """
    found = []
    progress = ProgressBar(len(files), "finding faces")
    for path in files:
        progress.update()
        try:
            found.extend((path, face, chip) for face, chip in read_face_chips(path, all_faces=all_faces))
        except (ImageReadError, NoFaceError) as error:
            if on_error:
                on_error(path, error)
    return found


def embed_files(face_model, files, all_faces=False, on_error=None):
    """[(path, face, embedding)] of `find_faces`' chips."""
    found = find_faces(files, all_faces, on_error)
    embeddings = face_model.embed([chip for _, _, chip in found]) if found else np.zeros((0, 128))
    return [(path, face, embedding) for (path, face, _), embedding in zip(found, embeddings, strict=True)]


def _report_error(path, error):
    warn(PROG, f"error: {error}")


# === Verify ===


def verify(args):
    from dlapps.apps.faces import FaceVerifier

    faces = FaceVerifier.from_folder(args.model)
    if args.all_faces:
        # Every face of image_a against every face of image_b: one record per pair, the closest pair first.
        results = faces.verify_all(args.image_a, args.image_b)
        say(args, f"{args.image_a}: {counted_faces(results[0].faces_a)}, {args.image_b}: "
                  f"{counted_faces(results[0].faces_b)}; {len(results)} pair(s), closest first")  # fmt: skip
        for result in results:
            emit(args, result.to_dict(), f"  a {_box(result.box_a)} - b {_box(result.box_b)}: {_verdict(result)}")
        return None
    result = faces.verify(args.image_a, args.image_b)
    for name, count, box in (("image_a", result.faces_a, result.box_a), ("image_b", result.faces_b, result.box_b)):
        if count > 1:
            warn(PROG, f"{getattr(args, name)}: {count} faces found; the largest is used (box {_box(box)}); "
                       "--all-faces compares every face")  # fmt: skip
    emit(args, result.to_dict(), _verdict(result))
    return None


def counted_faces(count):
    return f"{count} face{'' if count == 1 else 's'}"


def _box(box):
    """[x, y, width, height] in whole pixels, for a message."""
    return [round(v) for v in box]


def _verdict(result):
    verdict = "same person" if result.same_person else "different people"
    return (f"{verdict}: distance {result.distance:.3f} (threshold {result.threshold:.3f}), "
            f"confidence {result.confidence:.2f}")  # fmt: skip
