"""`FaceVerifier`: face embeddings, verification and a gallery of people, from Python (the course's FaceNet week).

```python
import dlapps
faces = dlapps.FaceVerifier.from_preset()                  # dlib's ResNet, calibrated on LFW
faces.verify("a.jpg", "b.jpg").same_person
gallery = faces.gallery("people.db"); faces.enroll(gallery, "Ada", ["ada1.jpg", "ada2.jpg"])
faces.identify("someone.jpg", gallery)[0].name            # a name, or "unknown"
```
"""

import unicodedata

import numpy as np

from dlapps.apps.base import App, expand_inputs, failure, to_image
from dlapps.results import FaceEmbedding, Failure, Identification, Verification


def normalise_name(name):
    """A person's name as stored and compared: Unicode NFC, outer spaces removed (so "José" typed two ways is one
    person)."""
    return unicodedata.normalize("NFC", str(name)).strip()


class FaceVerifier(App):
    """A face model folder: YuNet finds and aligns each face to a 150x150 chip, the network maps it to a 128-D unit
    embedding f(x), and two faces are the same person when ||f(a) - f(b)|| <= `threshold` (FaceNet, Schroff et al.
    2015; dlib's ResNet by default).

    Args:
        face_model: the folder's `FaceModel` (`dlapps.apps.face_verification.app`).
        folder: the model folder.
    """

    app = "faces"
    cli = "dlapps.cli.faces"
    model_option = "model"

    def __init__(self, face_model, folder=None):
        super().__init__(face_model.model, face_model.config.to_dict(), folder)
        self.face_model = face_model
        self.threshold = float(face_model.config.threshold)
        # The open-set threshold of `identify`: stricter than verify's, because a probe is compared with every
        # enrolled person, so a stranger has many chances to fall under the threshold by luck.
        self.open_set_threshold = float(face_model.config.open_set_threshold or self.threshold)

    @classmethod
    def from_folder(cls, folder):
        """A face model folder (config.json, and model.keras once trained).

        Raises:
            ValueError: not a face model folder, or another app's.
        """
        from dlapps.apps.face_verification.app import FaceModel
        from dlapps.presets import resolve_model

        folder = resolve_model(folder, cls.app)
        return cls(FaceModel(folder), folder)

    # === Embed ===

    def faces(self, image, all_faces=False):
        """[(Face, embedding)] of one image's largest face (every face with `all_faces`, largest first); each
        embedding float32 (128,), unit length.

        Raises:
            ImageReadError: the input cannot be read. NoFaceError: no face was found.
        """
        from dlapps.data.faces import NoFaceError, face_chips

        pixels = to_image(image)
        found = face_chips(pixels, all_faces=True)
        if not found:
            raise NoFaceError(f"no face found in {_name(image)}")
        found = found if all_faces else found[:1]
        embeddings = self.face_model.embed([chip for _, chip in found])
        return [(face, embedding) for (face, _), embedding in zip(found, embeddings, strict=True)]

    def embed(self, image, all_faces=False):
        """The largest face's embedding, float32 (128,); with `all_faces`, (n, 128) for every face."""
        pairs = self.faces(image, all_faces)
        return np.stack([e for _, e in pairs]) if all_faces else pairs[0][1]

    def predict(self, image):
        """The largest face of one image: a `FaceEmbedding` (its box, embedding and how many faces were found)."""
        found = self.faces(image, all_faces=True)
        face, embedding = found[0]
        return FaceEmbedding(embedding, list(face.box), image, len(found))

    # === Verify ===

    def verify(self, image_a, image_b):
        """Are the largest faces of two images the same person? A `Verification` (distance, threshold, the
        calibrated confidence of the verdict, the boxes used and how many faces each image showed).

        Raises:
            ImageReadError, NoFaceError: naming the image.
        """
        (face_a, a), count_a = self._largest(image_a)
        (face_b, b), count_b = self._largest(image_b)
        distance = float(np.linalg.norm(a - b))
        probability = self.face_model.confidence(distance)
        confidence = probability if distance <= self.threshold else 1.0 - probability
        return Verification(distance, self.threshold, confidence, list(face_a.box), list(face_b.box), image_a,
                            image_b, count_a, count_b)  # fmt: skip

    def _largest(self, image):
        found = self.faces(image, all_faces=True)
        return found[0], len(found)

    # === Gallery ===

    def gallery(self, path, create=True):
        """The SQLite gallery at `path` for this model (`create=False`: an existing one only).

        Raises:
            GalleryError: the file was made with another model, or is not a gallery.
        """
        from dlapps.gallery import Gallery

        return Gallery(path, self.face_model.identity, 128, create=create)

    def enroll(self, gallery, name, images):
        """Add one person's photos (the largest face of each) to `gallery`; returns the person's embedding count.

        Raises:
            ValueError: none of the photos shows a usable face (each failure is logged on the `dlapps` logger).
        """
        images = list(expand_inputs(images))
        found, sources = [], []
        for item in images:
            if isinstance(item, Failure):
                failure(item)
                continue
            try:
                found.append(self.faces(item)[0][1])
                sources.append(str(item) if not hasattr(item, "shape") else f"<array {len(sources)}>")
            except ValueError as error:
                failure(item, error)
        if not found:
            raise ValueError(f"{name}: no usable face in {len(images)} image(s); not enrolled")
        return gallery.enroll(normalise_name(name), found, sources)

    def identify(self, image, gallery, top_k=3, match="nearest", threshold=None, all_faces=False):
        """Who the largest face (every face with `all_faces`) is: a list of `Identification`, "unknown" when the
        closest person is farther than `threshold` (default: the model's open-set threshold).

        Args:
            gallery: a `Gallery` or a `dlapps.gallery.GalleryIndex` built from one (faster for many probes).
            match: "nearest" (a person's closest photo) or "mean" (their mean embedding).
        """
        from dlapps.gallery import GalleryIndex

        index = gallery if isinstance(gallery, GalleryIndex) else GalleryIndex(*gallery.embeddings())
        if not len(index.people):
            raise ValueError("the gallery is empty; enroll people first")
        threshold = self.open_set_threshold if threshold is None else threshold
        results = []
        for face, embedding in self.faces(image, all_faces):
            ranked = index.rank(embedding, match, top_k)
            best, distance = ranked[0]
            name = best if distance <= threshold else "unknown"
            results.append(Identification(name, distance, threshold, list(face.box), ranked, image))
        return results

    def identify_iter(self, inputs, gallery, **options):
        """`identify` over many inputs: one `Identification` per face, a `Failure` per unreadable or faceless input."""
        from dlapps.gallery import GalleryIndex

        index = gallery if isinstance(gallery, GalleryIndex) else GalleryIndex(*gallery.embeddings())
        for item in expand_inputs(inputs):
            if isinstance(item, Failure):
                yield failure(item)
                continue
            try:
                yield from self.identify(item, index, **options)
            except ValueError as error:
                yield failure(item, error)

    # === Train, evaluate, calibrate, export: the command line's verbs ===

    @classmethod
    def train(cls, data, output, **options):
        """Train an embedding network with the triplet loss on a folder of identities (`dlapps faces train`)."""
        report = cls._run_verb("train", [data], output=output, **options)
        trained = cls.from_folder(output)
        trained.report = report
        return trained

    def evaluate(self, pairs, **options):
        """10-fold accuracy, ROC AUC and TAR at fixed FARs on a pairs file or a folder of identities."""
        return self._run_verb("evaluate", [pairs], **{self.model_option: self.folder, **options})

    def calibrate(self, pairs, output, **options):
        """A copy of this model with its threshold and confidence curve fitted on your own pairs; returns it."""
        report = self._run_verb("calibrate", [pairs], output=output, **{self.model_option: self.folder, **options})
        calibrated = self.from_folder(output)
        calibrated.report = report
        return calibrated

    def export(self, format="saved_model", output=None, **options):
        """The embedding network as a SavedModel (aligned chips in, unit embeddings out) or a TFLite file."""
        return self._run_verb("export", **{self.model_option: self.folder, "format": format, "output": output,
                                           **options})  # fmt: skip


def _name(image):
    return str(image) if isinstance(image, str) or hasattr(image, "__fspath__") else f"<{type(image).__name__}>"
