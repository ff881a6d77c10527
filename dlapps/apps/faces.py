"""`FaceVerifier`: face embeddings, verification and a gallery of people, from Python (the course's FaceNet week).

```python
import dlapps
faces = dlapps.FaceVerifier.from_preset()                  # dlib's ResNet, calibrated on LFW
faces.verify("a.jpg", "b.jpg").same_person
gallery = faces.gallery("people.db"); faces.enroll(gallery, "Ada", ["ada1.jpg", "ada2.jpg"])
faces.identify("someone.jpg", gallery)[0].name            # a name, or "unknown"
```
"""

import logging
from pathlib import Path

import numpy as np

from dlapps.apps.base import App, expand_inputs, failure, to_image
from dlapps.gallery import normalise_name
from dlapps.results import FaceEmbedding, Failure, Identification, Verification
from dlapps.results import input_name as _name

log = logging.getLogger("dlapps")


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

    def _chips(self, image):
        """[(Face, chip)] of every face of one image big enough to align, largest first (never empty).

        Raises:
            ImageReadError: unreadable. NoFaceError: no face (FaceTooSmallError: only faces too small to align).
        """
        from dlapps.data.faces import FaceTooSmallError, NoFaceError, face_chips

        pixels = to_image(image)
        try:
            found = face_chips(pixels, all_faces=True)
        except FaceTooSmallError as error:
            raise FaceTooSmallError(f"{_name(image)}: {error}") from None
        if not found:
            raise NoFaceError(f"no face found in {_name(image)}")
        return found

    def chips(self, image, all_faces=False):
        """[(Face, chip)] of one image's largest face (every face with `all_faces`, largest first): YuNet's box and
        landmarks, and the aligned chip the network sees, RGB uint8 (150, 150, 3).

        Raises:
            ImageReadError, NoFaceError: as `faces`.
        """
        found = self._chips(image)
        return found if all_faces else found[:1]

    def _embed(self, found):
        embeddings = self.face_model.embed([chip for _, chip in found])
        return [(face, embedding) for (face, _), embedding in zip(found, embeddings, strict=True)]

    def faces(self, image, all_faces=False):
        """[(Face, embedding)] of one image's largest face (every face with `all_faces`, largest first); each
        embedding float32 (128,), unit length. Faces under `dlapps.data.faces.MIN_FACE_SIDE` pixels are left out.

        Raises:
            ImageReadError: the input cannot be read. NoFaceError: no face was found (FaceTooSmallError, a kind of
            NoFaceError: only faces too small to align, with their size).
        """
        found = self._chips(image)
        return self._embed(found if all_faces else found[:1])

    def embed(self, image, all_faces=False):
        """The largest face's embedding, float32 (128,); with `all_faces`, (n, 128) for every face."""
        pairs = self.faces(image, all_faces)
        return np.stack([e for _, e in pairs]) if all_faces else pairs[0][1]

    def predict(self, image):
        """The largest face of one image: a `FaceEmbedding` (its box, embedding and how many faces were found)."""
        found = self._chips(image)
        ((face, embedding),) = self._embed(found[:1])
        return FaceEmbedding(embedding, list(face.box), image, len(found))

    # === Verify ===

    def verify(self, image_a, image_b):
        """Are the largest faces of two images the same person? A `Verification` (distance, threshold, the
        calibrated confidence of the verdict, the boxes used and how many faces each image showed).

        Raises:
            ImageReadError, NoFaceError: naming the image.
        """
        found_a, found_b = self._chips(image_a), self._chips(image_b)
        ((face_a, a),) = self._embed(found_a[:1])
        ((face_b, b),) = self._embed(found_b[:1])
        result = self._verification(face_a, a, face_b, b, image_a, image_b, len(found_a), len(found_b))
        result.chips = (found_a[0][1], found_b[0][1])
        return result

    def verify_all(self, image_a, image_b):
        """Every face of `image_a` against every face of `image_b`: a list of `Verification`, one per pair of
        faces, the closest pair first (each with its two boxes and both images' face counts).

        Raises:
            ImageReadError, NoFaceError: naming the image.
        """
        found_a, found_b = self._embed(self._chips(image_a)), self._embed(self._chips(image_b))
        results = [self._verification(face_a, a, face_b, b, image_a, image_b, len(found_a), len(found_b))
                   for face_a, a in found_a for face_b, b in found_b]  # fmt: skip
        return sorted(results, key=lambda result: result.distance)

    def _verification(self, face_a, a, face_b, b, image_a, image_b, count_a, count_b):
        distance = float(np.linalg.norm(a - b))
        probability = self.face_model.confidence(distance)
        confidence = probability if distance <= self.threshold else 1.0 - probability
        return Verification(distance, self.threshold, confidence, list(face_a.box), list(face_b.box), image_a,
                            image_b, count_a, count_b)  # fmt: skip

    # === Gallery ===

    def gallery(self, path, create=True):
        """The SQLite gallery at `path` for this model (`create=False`: an existing one only).

        Raises:
            GalleryError: the file was made with another model, or is not a gallery.
        """
        from dlapps.gallery import Gallery

        return Gallery(path, self.face_model.identity, 128, create=create)

    def enroll(self, gallery, name, images, skipped=None):
        """Add one person's photos (the largest face of each) to `gallery`, in one transaction; returns the
        person's embedding count. The name is stored NFC-normalised (`normalise_name`).

        A photo whose face is already within the open-set threshold of another enrolled person is enrolled, with a
        warning on the `dlapps` logger ("close to Alice, distance 0.17"): the same person under two names, or two
        people `identify` will confuse. A photo with several faces is enrolled with its largest, with a warning.

        Args:
            skipped: a list to which a `Failure` is appended for each photo left out (unreadable, no usable face);
                each is also logged on the `dlapps` logger.

        Raises:
            ValueError: none of the photos shows a usable face, or the name is empty.
        """
        name = normalise_name(name)
        images = list(expand_inputs(images))
        found, sources = [], []
        for item in images:
            if isinstance(item, Failure):
                record = failure(item)
            else:
                try:
                    chips = self._chips(item)
                    found.append(self._embed(chips[:1])[0][1])
                    sources.append(_source(item))
                    if len(chips) > 1:
                        box = [round(v) for v in chips[0][0].box]
                        log.warning("%s: %d faces; the largest is enrolled as %s (box %s)", _name(item), len(chips),
                                    name, box)  # fmt: skip
                    continue
                except ValueError as error:
                    record = failure(item, error)
            if skipped is not None:
                skipped.append(record)
        if not found:
            raise ValueError(f"{name}: no usable face in {len(images)} image(s); not enrolled")
        self._warn_if_close(gallery, name, found, sources)
        return gallery.enroll(name, found, sources)

    def _warn_if_close(self, gallery, name, embeddings, sources):
        """Log each new photo within the open-set threshold of another enrolled person."""
        from dlapps.gallery import GalleryIndex

        names, vectors = gallery.embeddings()
        others = [i for i, other in enumerate(names) if other != name]
        if not others:
            return
        index = GalleryIndex([names[i] for i in others], vectors[others])
        for embedding, source in zip(embeddings, sources, strict=True):
            other, distance = index.rank(embedding, "nearest", 1)[0]
            if distance <= self.open_set_threshold:
                log.warning("%s: %s is close to %s, distance %.2f (identify's threshold %.3f): the same person under "
                            "two names, or two people identify will confuse", name, source, other, distance,
                            self.open_set_threshold)  # fmt: skip

    def identify(self, image, gallery, top_k=3, match="nearest", threshold=None, all_faces=False):
        """Who the largest face (every face with `all_faces`) is: a list of `Identification`, "unknown" when the
        closest person is farther than `threshold` (default: the model's open-set threshold). When two or more
        people are within the threshold, the face is named after the closest, `ambiguous` lists them all and a
        warning is logged on the `dlapps` logger.

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
            ranked = index.rank(embedding, match)
            best, distance = ranked[0]
            name = best if distance <= threshold else "unknown"
            within = [(other, d) for other, d in ranked if d <= threshold]
            ambiguous = [other for other, _ in within] if len(within) > 1 else []
            if ambiguous:
                log.warning("%s: %s match (%s; threshold %.3f); named the closest, %s", _name(image),
                            f"both {ambiguous[0]} and {ambiguous[1]}" if len(ambiguous) == 2
                            else f"all of {', '.join(ambiguous)}", ", ".join(f"{n} {d:.3f}" for n, d in within),
                            threshold, best)  # fmt: skip
            results.append(Identification(name, distance, threshold, list(face.box), ranked[:top_k], image,
                                              ambiguous))  # fmt: skip
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

    def calibrate(self, pairs, output, **options):
        """A copy of this model with its threshold and confidence curve fitted on your own pairs; returns it."""
        report = self._run_verb("calibrate", [pairs], output=output, **{self.model_option: self.folder, **options})
        calibrated = self.from_folder(output)
        calibrated.report = report
        return calibrated


def _source(item):
    """How an enrolled photo is recorded: a file by its resolved path (the same photo enrolled again through another
    path or link replaces itself), anything else (bytes, an array, a PIL image) by a digest of its content, so two
    different arrays enrolled in two calls are two photos, and the same one is one."""
    import hashlib

    if isinstance(item, str) or hasattr(item, "__fspath__"):
        return str(Path(item).resolve())
    data = bytes(item) if isinstance(item, (bytes, bytearray)) else np.asarray(item).tobytes()
    kind = getattr(item, "name", None) or ("bytes" if isinstance(item, bytes) else type(item).__name__)
    return f"<{kind} sha1:{hashlib.sha1(data).hexdigest()[:12]}>"
