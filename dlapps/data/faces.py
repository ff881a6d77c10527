"""Face detection with YuNet and alignment into the 150x150 chips that dlib's face-recognition ResNet expects.

- Detection: YuNet (Wu, Peng and Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence Research
  20(5):656-665, 2023), the OpenCV model zoo's `face_detection_yunet_2026may.onnx`, shipped beside this module (MIT, see
  `face_detection_yunet.LICENSE.md`) and run by OpenCV's `cv2.FaceDetectorYN`, so it works offline. It gives a box,
  five landmarks (right eye, left eye, nose tip, right and left mouth corners; "right" is the person's right, on
  the left of the image) and a score per face.
- Alignment: the chip geometry is dlib's `get_face_chip_details(shape, 150, 0.25)` (dlib/image_transforms/
  interpolation.h): a similarity transform (rotation, uniform scale, translation) maps the face's landmarks onto a
  fixed template, and the chip is sampled bilinearly. dlib's template is for its own 5 points (eye corners and the
  bottom of the nose); `YUNET_TEMPLATE_150` is where YuNet's 5 points fall in dlib's chips, fitted on dlib's
  reference faces by `benchmarks/fit_face_template.py`.

Coordinates are pixels with the centre of the top-left pixel at (0, 0), x to the right and y down (OpenCV's
convention).

Example:
    >>> for face, chip in read_face_chips("group.jpg", all_faces=True):  # doctest: +SKIP
    ...     print(face.box, face.score, chip.shape)  # chip: (150, 150, 3) uint8 RGB, ready for dlib's ResNet
"""

import contextlib
import hashlib
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dlapps.data.images import read_image

YUNET_MODEL_PATH = Path(__file__).resolve().with_name("face_detection_yunet.onnx")
YUNET_MODEL_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner")
# YuNet is trained on faces of about 10 to 300 pixels; a large photo is searched at this size, which also bounds the
# time and memory of one detection (a 12-megapixel photo would otherwise take seconds on a CPU).
MAX_DETECTION_SIDE = 1280
# The largest face (the longer side of its box, in the searched copy's pixels) YuNet still finds whole: on
# tests/data/faces/astronaut_face.jpg's face upscaled, a 450-pixel face gets its full box (score 0.92), a 600-pixel one
# a lower score, a 670-pixel one a partial box and a 1,200-pixel one none. A larger face is found on a coarser copy.
MAX_FACE_FOR_YUNET = 400
# The smallest face aligned (the shorter side of YuNet's box, pixels). YuNet finds faces from about 14 pixels, but a
# chip from them is upsampled over 7x and its landmarks are off by a large part of an eye: on the two test faces
# scaled down, a 15-18 pixel face came within 0.45 of the other person (the threshold was then 0.432), from 20 pixels up
# never closer than 0.48. (A face drifts 0.3-0.38 from its full-size self up to about 30 pixels: a floor, not a
# guarantee.)
MIN_FACE_SIDE = 20
CHIP_SIZE = 150
# dlib's padding: the template (landmarks of a mean face in a unit square) is shrunk by 1 + 2 * padding.
CHIP_PADDING = 0.25

# Where YuNet's 5 landmarks fall in dlib's 150x150 chips (padding 0.25), in the pixel coordinates above.
# Fitted by `benchmarks/fit_face_template.py` on dlib's 10 reference faces (shared face_models/dlib_reference/): dlib's
# own chip transform is rebuilt from its 5 landmarks in `landmarks.tsv` (it reproduces dlib's chips to a mean absolute
# difference of 0.4 grey levels), YuNet is run on each original LFW photo, and its landmarks are mapped into the chip by
# that transform and averaged (YuNet run on the chips themselves, padded with a black border, gives means that move by
# up to 6 pixels with the border's width, so the photos are used). Spread over the 10 faces (standard deviation of x, y,
# in chip pixels): right eye 3.1, 3.2; left eye 3.6, 2.0; nose tip 8.2, 4.1; right mouth corner 3.3, 3.6; left mouth
# corner 4.8, 3.3; so each mean is known to about 1 to 2.6 pixels. A one-off check on 394 other LFW faces, with dlib
# 20's own landmarks: a template fitted on half of them moves no point by more than 2.1 pixels and aligns the other half
# no closer to dlib (descriptor distance 0.173 against 0.178): YuNet's landmark noise, not the template, limits
# alignment.
YUNET_TEMPLATE_150 = np.array(
    [
        [45.92, 45.81],  # right eye
        [103.82, 45.44],  # left eye
        [75.16, 77.21],  # nose tip
        [52.47, 103.40],  # right mouth corner
        [101.36, 102.35],  # left mouth corner
    ]
)


class NoFaceError(ValueError):
    """No face was found in an image; the message names the file."""


class FaceTooSmallError(NoFaceError):
    """Faces were found, but all too small to align (under `MIN_FACE_SIDE` pixels); the message gives the size."""


@dataclass(frozen=True, eq=False)
class Face:
    """One face found by YuNet.

    Attributes:
        box: (x, y, width, height) of the face box in pixels of the input image, floats; it may reach past the
            image edges for a face cut by the frame.
        landmarks: float64 array of shape (5, 2), (x, y) pixels in the input image, in YuNet's order: right eye,
            left eye, nose tip, right mouth corner, left mouth corner (`LANDMARK_NAMES`).
        score: YuNet's confidence, 0 to 1.
    """

    box: tuple
    landmarks: np.ndarray
    score: float

    @property
    def area(self):
        """Box area in square pixels."""
        return self.box[2] * self.box[3]


# === Detection ===

_detector = None
# One OpenCV detector serves every call; it keeps state (input size, thresholds), so calls take turns.
_detector_lock = threading.Lock()


def _yunet_detector():
    """The YuNet detector, created once; the model file's SHA-256 is checked first."""
    global _detector
    if _detector is None:
        if not YUNET_MODEL_PATH.exists():
            raise FileNotFoundError(
                f"YuNet's model file is missing: {YUNET_MODEL_PATH}. It ships inside the package "
                "(package_data `data/*.onnx`); reinstall dlapps."
            )
        sha256 = hashlib.sha256(YUNET_MODEL_PATH.read_bytes()).hexdigest()
        if sha256 != YUNET_MODEL_SHA256:
            raise ValueError(
                f"{YUNET_MODEL_PATH} is damaged: expected sha256 {YUNET_MODEL_SHA256}. Received: {sha256}. Reinstall "
                "dlapps."
            )
        # OpenCV 5 logs a warning about compute targets when the network is loaded; it is not about anything the
        # caller can change, so only errors are logged while the detector is created.
        with _opencv_log_level_error():
            _detector = cv2.FaceDetectorYN.create(str(YUNET_MODEL_PATH), "", (320, 320), 0.6, 0.3)
    return _detector


@contextlib.contextmanager
def _opencv_log_level_error():
    # OpenCV 4 has cv2.getLogLevel / setLogLevel; OpenCV 5 moved them to cv2.utils.logging.
    module = getattr(cv2.utils, "logging", cv2)
    if not hasattr(module, "getLogLevel"):
        yield
        return
    previous = module.getLogLevel()
    module.setLogLevel(getattr(module, "LOG_LEVEL_ERROR", 2))
    try:
        yield
    finally:
        module.setLogLevel(previous)


def _check_rgb_image(image):
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        described = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image)
        raise ValueError(f"Expected an RGB uint8 image of shape (height, width, 3). Received: {described}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"Expected a non-empty image. Received: shape={image.shape}")


def detect_faces(image, score_threshold=0.6, nms_threshold=0.3, max_side=MAX_DETECTION_SIDE):
    """Find faces with YuNet, largest box first.

    Args:
        image: RGB uint8 array of shape (height, width, 3), as `read_image` returns.
        score_threshold: keep faces whose YuNet score is at least this (0 to 1). OpenCV's default is 0.9; 0.6
            finds more small, blurred or turned faces.
        nms_threshold: IoU above which the lower-scored of two overlapping boxes is dropped (0 to 1).
        max_side: an image whose longest side is above this is searched on a copy shrunk to this size (area
            interpolation) and the boxes and landmarks are scaled back; None searches at full size. Faces too
            large for YuNet there (over `MAX_FACE_FOR_YUNET` pixels: a close-up) are searched on copies halved
            again and again (a pyramid), each level answering for its own band of face sizes; a box mostly
            inside a coarser level's box is the same face seen in part and is dropped.

    Returns:
        A list of `Face`, in pixels of `image`, sorted by box area, largest first; empty when there is no face.

    Raises:
        ValueError: `image` is not a non-empty (H, W, 3) uint8 array, or a threshold or `max_side` is out of range.

    Example:
        >>> faces = detect_faces(read_image("photo.jpg"))  # doctest: +SKIP
        >>> faces[0].box, faces[0].landmarks[0]  # (x, y, w, h) and the right eye, in pixels  # doctest: +SKIP
    """
    _check_rgb_image(image)
    for name, value in (("score_threshold", score_threshold), ("nms_threshold", nms_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1. Received: {name}={value}")
    if max_side is not None and max_side < 32:
        raise ValueError(f"max_side must be at least 32 pixels (or None). Received: max_side={max_side}")
    height, width = image.shape[:2]
    # OpenCV's DNN reads BGR.
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    longest = max(height, width)
    # The pyramid: the finest level has `max_side` as its longest side (the image's own size when smaller, or with
    # None), each next level half the last, down to the first level a whole face fits YuNet's range.
    sides = [longest if max_side is None else min(longest, int(max_side))]
    while sides[-1] > MAX_FACE_FOR_YUNET and sides[-1] // 2 >= 32:
        sides.append(sides[-1] // 2)
    candidates = []  # (level, face)
    for level, side in enumerate(sides):
        found = _detect_level(bgr, side, score_threshold, nms_threshold)
        for face, size_at_level in found:
            # Each level answers for its own band of sizes: the finest for faces YuNet sees whole there, a coarser
            # one only for faces too large for the level above it (twice its size there).
            too_large_here = size_at_level > MAX_FACE_FOR_YUNET and level < len(sides) - 1
            large_enough_here = level == 0 or size_at_level * 2 > MAX_FACE_FOR_YUNET
            if not too_large_here and large_enough_here:
                candidates.append((level, face))
    # Across levels, a box mostly inside another one's is the same face seen in part (a close-up cut into pieces
    # at too fine a level): the coarser level's box, the whole face, is kept.
    candidates.sort(key=lambda item: (-item[0], -item[1].score))
    faces, levels = [], []
    for level, face in candidates:
        if all(kept_level == level or _overlap_of_smaller(face.box, kept.box) <= 0.5
               for kept, kept_level in zip(faces, levels, strict=True)):  # fmt: skip
            faces.append(face)
            levels.append(level)
    return sorted(faces, key=lambda face: (-face.area, -face.score))


def _detect_level(bgr, side, score_threshold, nms_threshold):
    """YuNet on `bgr` shrunk so its longest side is `side` (area interpolation): [(Face in `bgr`'s pixels, the box's
    longer side in the shrunk copy's pixels)]."""
    height, width = bgr.shape[:2]
    if side < max(height, width):
        ratio = side / max(height, width)
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    scale_x, scale_y = width / bgr.shape[1], height / bgr.shape[0]
    with _detector_lock:
        detector = _yunet_detector()
        detector.setScoreThreshold(float(score_threshold))
        detector.setNMSThreshold(float(nms_threshold))
        detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = detector.detect(bgr)
    found = []
    for row in [] if rows is None else rows.astype(np.float64):
        # A resized image's pixel centres map back by x = (x' + 0.5) * scale - 0.5 (cv2.resize's geometry).
        points = np.stack([(row[4:14:2] + 0.5) * scale_x - 0.5, (row[5:14:2] + 0.5) * scale_y - 0.5], axis=1)
        box = (
            (row[0] + 0.5) * scale_x - 0.5,
            (row[1] + 0.5) * scale_y - 0.5,
            row[2] * scale_x,
            row[3] * scale_y,
        )
        face = Face(box=tuple(float(v) for v in box), landmarks=points, score=float(row[14]))
        found.append((face, float(max(row[2], row[3]))))
    return found


def _overlap_of_smaller(box_a, box_b):
    """The intersection of two (x, y, w, h) boxes over the smaller one's area (1: one lies inside the other)."""
    x0, y0 = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    x1, y1 = min(box_a[0] + box_a[2], box_b[0] + box_b[2]), min(box_a[1] + box_a[3], box_b[1] + box_b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    smaller = min(box_a[2] * box_a[3], box_b[2] * box_b[3])
    return inter / smaller if smaller > 0 else 0.0


# === Alignment ===


def face_template(size=CHIP_SIZE):
    """YuNet's 5 landmarks in a `size` x `size` chip: `YUNET_TEMPLATE_150` scaled, as a float64 (5, 2) array."""
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels. Received: size={size}")
    # Scale the chip as a square of side 150, not the pixel centres: pixel centre c lies at c + 0.5 from the edge.
    return (YUNET_TEMPLATE_150 + 0.5) * (size / CHIP_SIZE) - 0.5


def similarity_transform(source, target):
    """The least-squares similarity transform (rotation, uniform scale, translation) taking `source` to `target`.

    Umeyama's closed form ("Least-squares estimation of transformation parameters between two point patterns",
    IEEE PAMI 13(4), 1991), as dlib's `find_similarity_transform`; all points count equally and a reflection is
    never chosen.

    Args:
        source, target: float arrays of shape (N, 2), N >= 2, of corresponding points.

    Returns:
        A float64 (2, 3) matrix M with target ~= source @ M[:, :2].T + M[:, 2] (OpenCV's affine layout).

    Raises:
        ValueError: the shapes differ or are not (N, 2) with N >= 2, or the source points all coincide.
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or len(source) < 2:
        raise ValueError(
            f"Expected two (N, 2) point arrays of the same shape, N >= 2. Received: {source.shape} and {target.shape}"
        )
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    source_variance = (source_centred**2).sum() / len(source)
    if not source_variance > 1e-12:
        raise ValueError(f"The source points all coincide; no transform is defined. Received: {source.tolist()}")
    covariance = target_centred.T @ source_centred / len(source)
    u, singular_values, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular_values) @ sign) / source_variance
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = target_mean - scale * rotation @ source_mean
    return matrix


def alignment_matrix(landmarks, size=CHIP_SIZE):
    """The (2, 3) similarity transform from image pixels to chip pixels that `align_face` applies.

    Args:
        landmarks: YuNet's 5 landmarks of one face, shape (5, 2), (x, y) pixels (`Face.landmarks`).
        size: side of the chip in pixels.

    Returns:
        A float64 (2, 3) matrix. As in dlib, the least-squares fit goes from the template to the landmarks (the
        residuals are measured in the image, where the landmarks' errors are) and is then inverted; a fit in the
        other direction would shrink the face's scale by the landmarks' noise.

    Raises:
        ValueError: `landmarks` is not a finite (5, 2) array, or its points all coincide.
    """
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != (5, 2) or not np.isfinite(landmarks).all():
        raise ValueError(
            f"Expected YuNet's 5 landmarks as a finite (5, 2) array of (x, y) pixels. Received: {landmarks.tolist()}"
        )
    if not landmarks.var(axis=0).sum() > 1e-12:
        raise ValueError(f"The landmarks all coincide; no face can be aligned. Received: {landmarks.tolist()}")
    return cv2.invertAffineTransform(similarity_transform(face_template(size), landmarks))


def align_face(image, landmarks, size=CHIP_SIZE):
    """Cut an aligned face chip as dlib does: YuNet's landmarks onto the template, bilinear sampling.

    The similarity transform is `alignment_matrix` (least squares over the 5 points). Pixels outside the image are
    black (a constant border), as in dlib's `extract_image_chip`, whose chips dlib's ResNet was trained on; a
    replicated border would smear the edge rows into streaks across the chip. When the face is more than twice
    the chip's size, the image is first halved with a Gaussian pyramid (as dlib does) so that bilinear sampling
    does not alias. dlib truncates the interpolated values where OpenCV rounds them: chips differ by half a grey
    level on average, far below what moves a descriptor.

    Args:
        image: RGB uint8 array of shape (height, width, 3).
        landmarks: the face's 5 YuNet landmarks, shape (5, 2), (x, y) pixels in `image` (`Face.landmarks`).
        size: side of the chip in pixels; 150 for dlib's ResNet.

    Returns:
        The chip, an RGB uint8 array of shape (size, size, 3).

    Raises:
        ValueError: the image is not a non-empty (H, W, 3) uint8 array, or the landmarks are not a finite (5, 2)
            array of distinct points.
    """
    _check_rgb_image(image)
    size = int(size)
    matrix = alignment_matrix(landmarks, size)
    # Image pixels per chip pixel; each pyramid level halves the image (pyrDown's pixel i sits at 2i).
    image_pixels_per_chip_pixel = 1.0 / math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    while image_pixels_per_chip_pixel > 2.0 and min(image.shape[:2]) >= 2:
        image = cv2.pyrDown(image)
        matrix = matrix.copy()
        matrix[:, :2] *= 2.0
        image_pixels_per_chip_pixel /= 2.0
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )


# === Faces and chips ===


def face_chips(image, all_faces=False, size=CHIP_SIZE, min_face=MIN_FACE_SIDE, **detect_kwargs):
    """Detect and align: the largest face's chip, or every face's.

    Args:
        image: RGB uint8 array of shape (height, width, 3).
        all_faces: False for the largest face only, True for every face, largest first.
        size: side of the chips in pixels.
        min_face: faces whose box's shorter side is under this many pixels are too small to align and are left
            out (`MIN_FACE_SIDE`; 0 keeps every face).
        **detect_kwargs: passed to `detect_faces` (`score_threshold`, `nms_threshold`, `max_side`).

    Returns:
        A list of (Face, chip) pairs, the chip an RGB uint8 (size, size, 3) array; empty when there is no face.

    Raises:
        FaceTooSmallError: every face found is too small ("face too small to align: 15x17 pixels; at least 20").
        ValueError: as `detect_faces`.
    """
    found = detect_faces(image, **detect_kwargs)
    faces = [face for face in found if min(face.box[2], face.box[3]) >= min_face]
    if found and not faces:
        width, height = found[0].box[2:]
        raise FaceTooSmallError(
            f"face too small to align: {width:.0f}x{height:.0f} pixels; at least {min_face} on the shorter side"
        )
    if not all_faces:
        faces = faces[:1]
    return [(face, align_face(image, face.landmarks, size)) for face in faces]


def read_face_chips(path, all_faces=False, size=CHIP_SIZE, **detect_kwargs):
    """Read an image file (`read_image`) and return `face_chips` of it.

    Returns:
        A non-empty list of (Face, chip) pairs, as `face_chips`.

    Raises:
        ImageReadError: the file cannot be read (the message names it).
        NoFaceError: YuNet found no face ("no face found in PATH"); its `FaceTooSmallError` kind when every face
            is too small to align ("PATH: face too small to align: 15x17 pixels; at least 20 ...").
    """
    try:
        chips = face_chips(read_image(path), all_faces=all_faces, size=size, **detect_kwargs)
    except FaceTooSmallError as error:
        raise FaceTooSmallError(f"{path}: {error}") from None
    if not chips:
        raise NoFaceError(f"no face found in {path}")
    return chips
