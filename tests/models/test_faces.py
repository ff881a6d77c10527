"""YuNet face detection and alignment into dlib's 150x150 chips: detection, ordering, exact alignment math, errors."""

import hashlib
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dlapps.data.faces import (
    CHIP_SIZE,
    YUNET_MODEL_PATH,
    YUNET_MODEL_SHA256,
    YUNET_TEMPLATE_150,
    Face,
    FaceTooSmallError,
    NoFaceError,
    align_face,
    alignment_matrix,
    detect_faces,
    face_chips,
    face_template,
    read_face_chips,
    similarity_transform,
)
from dlapps.data.images import ImageReadError

FACES = Path(__file__).resolve().parent.parent / "data" / "faces"
ASTRONAUT = FACES / "astronaut_face.jpg"  # 256x256, one face (see tests/data/faces/README.md)
CAT = FACES / "chelsea_cat.jpg"  # a cat, no human face


@pytest.fixture(scope="module")
def astronaut():
    return np.asarray(Image.open(ASTRONAUT).convert("RGB"))


@pytest.fixture(scope="module")
def astronaut_face(astronaut):
    (face,) = detect_faces(astronaut)
    return face


def similar_landmarks(angle_degrees, scale, shift, size=CHIP_SIZE):
    """The template of a `size` chip moved by a known similarity transform, and that transform's inverse."""
    angle = math.radians(angle_degrees)
    linear = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    landmarks = face_template(size) @ linear.T + np.asarray(shift, np.float64)
    return landmarks, linear


def test_the_shipped_model_is_yunet_with_its_license():
    assert hashlib.sha256(YUNET_MODEL_PATH.read_bytes()).hexdigest() == YUNET_MODEL_SHA256
    license_text = YUNET_MODEL_PATH.with_name("face_detection_yunet.LICENSE.md").read_text()
    assert "MIT License" in license_text and YUNET_MODEL_SHA256 in license_text


def test_finds_the_face_with_plausible_box_and_landmarks(astronaut, astronaut_face):
    face = astronaut_face
    assert isinstance(face, Face) and 0.8 < face.score <= 1.0
    x, y, width, height = face.box
    # The face, measured by eye on the crop: about 90x110 pixels, its top left near (59, 66).
    assert abs(x - 59) < 8 and abs(y - 66) < 8 and 70 < width < 110 and 90 < height < 130
    landmarks = face.landmarks
    assert landmarks.shape == (5, 2) and landmarks.dtype == np.float64
    assert ((landmarks >= face.box[:2]) & (landmarks <= (x + width, y + height))).all()
    right_eye, left_eye, nose, right_mouth, left_mouth = landmarks
    # The person's right eye and mouth corner are on the left of the image; eyes above the nose above the mouth.
    assert right_eye[0] < nose[0] < left_eye[0] and right_mouth[0] < left_mouth[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])
    assert 35 < left_eye[0] - right_eye[0] < 55


def test_input_is_not_modified_and_bad_inputs_are_refused(astronaut):
    image = astronaut.copy()
    detect_faces(image)
    np.testing.assert_array_equal(image, astronaut)
    for bad in (astronaut.astype(np.float32), astronaut[..., 0], astronaut[..., :2], np.zeros((0, 5, 3), np.uint8)):
        with pytest.raises(ValueError, match="Received"):
            detect_faces(bad)
    with pytest.raises(ValueError, match="score_threshold"):
        detect_faces(astronaut, score_threshold=1.5)
    with pytest.raises(ValueError, match="max_side"):
        detect_faces(astronaut, max_side=8)


def test_largest_face_first_and_all_faces(astronaut):
    # The same face twice side by side, the right-hand copy at 0.7 scale: two faces, the larger one first.
    small = cv2.resize(astronaut, (179, 179), interpolation=cv2.INTER_AREA)
    canvas = np.full((256, 256 + 179), 128, np.uint8)[..., None].repeat(3, axis=2)
    canvas[:, :256] = astronaut
    canvas[:179, 256:] = small
    faces = detect_faces(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert faces[0].box[0] < 256 <= faces[1].box[0]
    np.testing.assert_allclose(faces[1].box[2] / faces[0].box[2], 0.7, atol=0.1)
    chips = face_chips(canvas, all_faces=True)
    assert [face.box for face, _ in chips] == [face.box for face in faces]
    (only,) = face_chips(canvas)
    assert only[0].box == faces[0].box


def test_large_images_are_searched_on_a_downscaled_copy(astronaut, astronaut_face):
    big = cv2.resize(astronaut, (768, 768), interpolation=cv2.INTER_CUBIC)
    (face,) = detect_faces(big, max_side=256)
    # Detected on a copy the size of the original, the landmarks come back in the big image's pixels.
    np.testing.assert_allclose(face.landmarks, (astronaut_face.landmarks + 0.5) * 3 - 0.5, atol=1.5)
    np.testing.assert_allclose(face.box[2:], np.array(astronaut_face.box[2:]) * 3, atol=1.5)


@pytest.mark.parametrize("side", [1000, 1500, 2300])
def test_a_close_up_larger_than_yunets_range_gets_its_whole_box(astronaut, side):
    # A close-up: the face fills most of the photo, upscaled to a face of about 700 to 1,600 pixels. YuNet sees a
    # face of that size only in part, or not at all, on the finest copy; a coarser copy of the pyramid finds it whole.
    x, y = 45, 50
    crop = astronaut[y:200, x:175]
    (small,) = detect_faces(crop)
    scale = side / crop.shape[1]
    big = cv2.resize(crop, (side, round(crop.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
    faces = detect_faces(big)
    assert len(faces) == 1, [face.box for face in faces]
    expected = np.array(small.box) * scale
    np.testing.assert_allclose(faces[0].box[2], expected[2], rtol=0.1)  # the whole face's width, not a part's
    assert faces[0].box[3] > 0.85 * expected[3] and faces[0].score > 0.8
    right_eye, left_eye = faces[0].landmarks[:2]
    np.testing.assert_allclose(left_eye[0] - right_eye[0], (small.landmarks[1, 0] - small.landmarks[0, 0]) * scale,
                               rtol=0.1)  # fmt: skip


def test_a_face_too_small_to_align_is_refused_with_its_size(astronaut):
    tiny = np.full((64, 64, 3), 128, np.uint8)
    tiny[:46, :46] = np.asarray(Image.fromarray(astronaut).resize((46, 46), Image.LANCZOS))
    (face,) = detect_faces(tiny)
    with pytest.raises(FaceTooSmallError, match=r"face too small to align: 16x19 pixels; at least 20"):
        face_chips(tiny)
    assert len(face_chips(tiny, min_face=0)) == 1
    # In a photo with a face large enough, the small ones are left out, not the photo.
    canvas = np.full((256, 256 + 64, 3), 128, np.uint8)
    canvas[:, :256] = astronaut
    canvas[:64, 256:] = tiny
    assert len(detect_faces(canvas)) == 2 and len(face_chips(canvas, all_faces=True)) == 1


@pytest.mark.parametrize("size", [150, 112])
@pytest.mark.parametrize(
    ("angle", "scale", "shift"), [(0.0, 1.0, (0, 0)), (17.0, 1.7, (40.5, -12.25)), (-30, 0.4, (3, 9))]
)
def test_alignment_maps_similar_landmarks_exactly_onto_the_template(size, angle, scale, shift):
    landmarks, _ = similar_landmarks(angle, scale, shift, size)
    matrix = alignment_matrix(landmarks, size)
    mapped = landmarks @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(mapped, face_template(size), rtol=0, atol=1e-9)
    # A similarity: equal singular values, no reflection, the inverse scale.
    np.testing.assert_allclose(np.linalg.svd(matrix[:, :2], compute_uv=False), [1 / scale] * 2, rtol=1e-12)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_similarity_transform_is_least_squares_from_template_to_landmarks():
    rng = np.random.default_rng(0)
    target = face_template() * 1.3 + 20 + rng.normal(0, 2.0, (5, 2))
    matrix = similarity_transform(face_template(), target)
    residual = ((face_template() @ matrix[:, :2].T + matrix[:, 2] - target) ** 2).sum()
    # Any nearby similarity fits worse.
    for _ in range(20):
        nudged = matrix.copy()
        angle, scale = rng.normal(0, 0.01), 1 + rng.normal(0, 0.01)
        rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        nudged[:, :2] = rotation @ matrix[:, :2]
        nudged[:, 2] += rng.normal(0, 0.1, 2)
        assert ((face_template() @ nudged[:, :2].T + nudged[:, 2] - target) ** 2).sum() > residual
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((5, 2)), target)


def test_align_face_puts_the_landmarks_on_the_template_in_the_chip():
    # Five white dots where a turned, enlarged face's landmarks are: in the chip they must sit on the template.
    landmarks, _ = similar_landmarks(12.0, 1.6, (30.0, 25.0))
    image = np.zeros((340, 340, 3), np.uint8)
    for x, y in np.round(landmarks).astype(int):
        image[y - 2 : y + 3, x - 2 : x + 3] = 255
    chip = align_face(image, np.round(landmarks))
    assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3) and chip.dtype == np.uint8
    _, labels, stats, centroids = cv2.connectedComponentsWithStats((chip[..., 0] > 60).astype(np.uint8))
    dots = centroids[1:][np.argsort(stats[1:, cv2.CC_STAT_LEFT])]
    expected = YUNET_TEMPLATE_150[np.argsort(YUNET_TEMPLATE_150[:, 0])]
    assert len(dots) == 5
    np.testing.assert_allclose(dots, expected, atol=0.6)


def test_align_face_of_a_big_face_matches_the_small_one(astronaut, astronaut_face):
    # The same photo 4x larger: the chip comes through the Gaussian pyramid and must look the same.
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    chip = align_face(astronaut, astronaut_face.landmarks)
    big_chip = align_face(big, (astronaut_face.landmarks + 0.5) * 4 - 0.5)
    assert np.abs(chip.astype(float) - big_chip).mean() < 1.5


def test_read_face_chips_and_the_chip_is_a_face(tmp_path):
    ((face, chip),) = read_face_chips(ASTRONAUT)
    assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3) and chip.dtype == np.uint8
    # YuNet, run again on the chip (with a border, as the chip is cut tight), finds the eyes near the template.
    padded = cv2.copyMakeBorder(chip, 75, 75, 75, 75, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    (again,) = detect_faces(padded)
    np.testing.assert_allclose(again.landmarks[:2] - 75, YUNET_TEMPLATE_150[:2], atol=8)
    ((_, small),) = read_face_chips(ASTRONAUT, size=64)
    assert small.shape == (64, 64, 3)


def test_no_face_raises_naming_the_file(tmp_path):
    grey = tmp_path / "grey.png"
    Image.new("RGB", (200, 160), (128, 128, 128)).save(grey)
    assert face_chips(np.full((160, 200, 3), 128, np.uint8)) == []
    for path in (grey, CAT):
        with pytest.raises(NoFaceError, match=re.escape(f"no face found in {path}")):
            read_face_chips(path)
    with pytest.raises(ImageReadError, match="missing.jpg"):
        read_face_chips(tmp_path / "missing.jpg")


def test_align_face_refuses_bad_landmarks(astronaut):
    with pytest.raises(ValueError, match="5 landmarks"):
        align_face(astronaut, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="5 landmarks"):
        align_face(astronaut, np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="coincide"):
        align_face(astronaut, np.ones((5, 2)))


def test_pk_batches_hold_p_people_with_k_chips_each_from_their_own_folder():
    from dlapps.tasks.face_embedder import pk_batches

    # Each person's chips are one flat grey level, 60 apart: flips, +/- 20 brightness and reflected shifts and zooms
    # keep a chip within 20 of its person's level, so every chip can be traced to the person it was drawn from.
    levels = [20, 80, 140, 200, 235]
    groups = [np.full((n, 150, 150, 3), level, np.uint8) for n, level in zip((2, 3, 5, 2, 4), levels, strict=True)]
    for jitter in (0.0, 0.1):
        images, labels = next(iter(pk_batches(groups, 3, 4, seed=1, jitter=jitter)))
        images, labels = images.numpy(), labels.numpy()
        assert images.shape == (12, 150, 150, 3) and images.dtype == np.float32
        people, counts = np.unique(labels, return_counts=True)
        assert len(people) == 3 and (counts == 4).all()
        for image, label in zip(images, labels, strict=True):
            assert np.abs(image - levels[label]).max() <= 20.0 + 1e-3


def test_labelled_batches_give_every_chip_once_a_pass_with_its_persons_label():
    from dlapps.tasks.face_embedder import labelled_batches

    levels = [20, 80, 140, 200]
    groups = [np.full((n, 150, 150, 3), level, np.uint8) for n, level in zip((2, 3, 1, 4), levels, strict=True)]
    dataset = labelled_batches(groups, 4, seed=1, jitter=0.1)
    assert int(dataset.cardinality()) == 3  # 10 chips in batches of 4
    for _ in range(2):  # a second pass gives them all again
        labels = []
        for images, batch_labels in dataset:
            assert images.dtype == np.float32
            for image, label in zip(images.numpy(), batch_labels.numpy(), strict=True):
                assert np.abs(image - levels[label]).max() <= 20.0 + 1e-3
            labels += batch_labels.numpy().tolist()
        assert sorted(labels) == [0, 0, 1, 1, 1, 2, 3, 3, 3, 3]
