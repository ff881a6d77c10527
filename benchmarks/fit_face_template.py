"""Fit `YUNET_TEMPLATE_150`: where YuNet's 5 landmarks fall in dlib's 150x150 face chips (padding 0.25).

Usage:
    python benchmarks/fit_face_template.py --reference ../shared/data/face_models/dlib_reference
    python benchmarks/fit_face_template.py --reference ../shared/data/face_models/dlib_reference --descriptors

Expected: about 10 s (20 s with --descriptors, which builds dlib's ResNet; set KERAS_HOME to keep its converted
weights out of ~/.keras). Prints the template of `dlapps/data/faces.py` (spread of 2 to 8 chip pixels), dlib's chips
rebuilt to 0.4 grey levels, our chips 18 grey levels from dlib's and descriptors 0.17 from dlib's on average.

The reference folder (see its README) holds dlib's chips of 10 LFW photos and dlib's 5 landmarks in each photo
(`landmarks.tsv`, photo paths relative to `--data-root`, by default two folders up). The fit:
1. rebuild dlib's chip transform of each photo from its landmarks: dlib's `get_face_chip_details` template, least
   squares as dlib's `find_similarity_transform`. The template, in [0, 1], is scaled by size / (1 + 2 padding) to the
   chip's edges, so a pixel centre sits at template - 0.5. Sampling the photo with that transform (and truncating
   as dlib does) must give back dlib's chip: the mean absolute difference is printed.
2. run YuNet on the original photo (the face in its context, as in use), map its 5 landmarks into the chip by that
   transform, and average over the photos. Standard deviations tell how well the mean is known.
A cross-check runs YuNet on the reference chips themselves, padded with black borders of several widths (the chip
alone is cut too tight for YuNet): the means move with the border, which is why the photos are used for the fit.

Then the template is evaluated on the same photos: YuNet, `align_face`, mean absolute pixel difference from dlib's
chip, and with --descriptors the Euclidean distance between the descriptor of our chip and dlib's own descriptor
(`descriptors.tsv`), for the template in `faces.py`, for a template refitted without the photo under test (leave
one out, a fair estimate for new faces), and for the chip-fitted template.
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from dlapps.data.faces import (
    YUNET_TEMPLATE_150,
    align_face,
    detect_faces,
    similarity_transform,
)
from dlapps.data.images import read_image

# dlib's get_face_chip_details for 5-point shapes (dlib/image_transforms/interpolation.h): the mean face's points in
# a unit square, in dlib's order: one eye's outer and inner corner, the other eye's outer and inner corner, and
# below the nose.
DLIB_TEMPLATE_UNIT = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123812892, 0.6277975417761],
    ]
)
CHIP_SIZE, PADDING = 150, 0.25
BORDERS = (25, 50, 75, 100, 150)


def dlib_template_pixels(size=CHIP_SIZE, padding=PADDING):
    return (DLIB_TEMPLATE_UNIT + padding) / (1 + 2 * padding) * size - 0.5


def read_reference(reference, data_root):
    """[(name, photo RGB, dlib landmarks (5, 2), dlib chip RGB)] from landmarks.tsv."""
    lines = (reference / "landmarks.tsv").read_text().strip().splitlines()[1:]
    faces = []
    for line in lines:
        photo, *values = line.split("\t")
        name = Path(photo).stem
        landmarks = np.array(values, np.float64).reshape(5, 2)
        faces.append((name, read_image(data_root / photo), landmarks, read_image(reference / f"{name}_chip.png")))
    return faces


def read_descriptors(reference):
    descriptors = {}
    for line in (reference / "descriptors.tsv").read_text().strip().splitlines():
        name, *values = line.split("\t")
        descriptors[Path(name).name.removesuffix("_chip.png")] = np.array(values, np.float64)
    return descriptors


def dlib_chip_matrix(landmarks):
    """dlib's photo-to-chip transform for its 5 landmarks: fitted from the chip to the photo, then inverted."""
    return cv2.invertAffineTransform(similarity_transform(dlib_template_pixels(), landmarks))


def rebuild_dlib_chip(photo, matrix):
    # dlib samples bilinearly in floating point and truncates to uint8.
    chip = cv2.warpAffine(photo.astype(np.float32), matrix, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR)
    return np.floor(np.clip(chip, 0, 255)).astype(np.uint8)


def largest_face_landmarks(image):
    faces = detect_faces(image)
    return faces[0].landmarks if faces else None


def map_points(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


def describe(points):
    mean, std = points.mean(axis=0), points.std(axis=0, ddof=1)
    rows = [f"        [{x:.2f}, {y:.2f}],  # spread {sx:.1f}, {sy:.1f}" for (x, y), (sx, sy) in zip(mean, std)]
    return "\n".join(rows)


def chip_fit(faces):
    """YuNet on dlib's chips padded with a black border: mean landmarks per border width."""
    fits = {}
    for border in BORDERS:
        points = []
        for _, _, _, chip in faces:
            padded = cv2.copyMakeBorder(chip, border, border, border, border, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            landmarks = largest_face_landmarks(padded)
            if landmarks is not None:
                points.append(landmarks - border)
        fits[border] = np.array(points)
    return fits


def with_template(template, function):
    """Run `function` with `faces.YUNET_TEMPLATE_150` temporarily replaced."""
    import dlapps.data.faces as faces_module

    saved = faces_module.YUNET_TEMPLATE_150
    faces_module.YUNET_TEMPLATE_150 = template
    try:
        return function()
    finally:
        faces_module.YUNET_TEMPLATE_150 = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, type=Path, help="the dlib_reference folder")
    parser.add_argument("--data-root", type=Path, help="folder the photo paths of landmarks.tsv start from")
    parser.add_argument("--descriptors", action="store_true", help="also compare descriptors with dlib's ResNet")
    args = parser.parse_args()
    data_root = args.data_root or args.reference.resolve().parent.parent
    faces = read_reference(args.reference, data_root)

    print(f"1. dlib's chip transform rebuilt from landmarks.tsv ({len(faces)} photos)")
    matrices, differences = [], []
    for _, photo, landmarks, chip in faces:
        matrix = dlib_chip_matrix(landmarks)
        matrices.append(matrix)
        differences.append(np.abs(rebuild_dlib_chip(photo, matrix).astype(float) - chip).mean())
    print(
        f"   mean absolute difference from dlib's chips: {np.mean(differences):.3f} grey levels "
        f"(per photo {min(differences):.3f} to {max(differences):.3f})"
    )

    print("2. YuNet on the photos, landmarks mapped into the chip (mean and standard deviation, chip pixels):")
    mapped = []
    for (name, photo, _, _), matrix in zip(faces, matrices):
        landmarks = largest_face_landmarks(photo)
        if landmarks is None:
            print(f"   no face found in {name}; left out")
            continue
        mapped.append(map_points(matrix, landmarks))
    mapped = np.array(mapped)
    print(f"   fitted on {len(mapped)} photos:\n{describe(mapped)}")
    template = mapped.mean(axis=0)
    print(f"   largest difference from faces.YUNET_TEMPLATE_150: {np.abs(template - YUNET_TEMPLATE_150).max():.3f}")

    print("   cross-check, YuNet on dlib's chips with a black border (mean landmarks for each border width):")
    chip_fits = chip_fit(faces)
    for border, points in chip_fits.items():
        flat = ", ".join(f"({x:.1f}, {y:.1f})" for x, y in points.mean(axis=0))
        print(f"   border {border:3d} px, {len(points)} chips: {flat}")
    chip_template = np.mean([points.mean(axis=0) for points in chip_fits.values()], axis=0)

    print("3. align_face with YuNet's landmarks against dlib's chips:")
    descriptors = read_descriptors(args.reference) if args.descriptors else None
    model = None
    if args.descriptors:
        from dlapps.backbones.dlib_resnet import build_dlib_face_resnet

        model = build_dlib_face_resnet(weights="dlib")
    templates = {"faces.py template": lambda index: YUNET_TEMPLATE_150}
    if len(mapped) == len(faces):
        templates["leave one out"] = lambda index: np.delete(mapped, index, axis=0).mean(axis=0)
    templates["chip-fitted template"] = lambda index: chip_template
    for label, template_for in templates.items():
        chips, references, names = [], [], []
        for index, (name, photo, _, chip) in enumerate(faces):
            landmarks = largest_face_landmarks(photo)
            if landmarks is None:
                continue
            ours = with_template(template_for(index), lambda: align_face(photo, landmarks))  # noqa: B023
            chips.append(ours)
            references.append(chip)
            names.append(name)
        chips, references = np.array(chips), np.array(references)
        pixel = np.abs(chips.astype(float) - references).mean(axis=(1, 2, 3))
        line = f"   {label:22s} mean abs pixel difference {pixel.mean():.1f} ({pixel.min():.1f}-{pixel.max():.1f})"
        if model is not None:
            ours = model.predict(chips.astype(np.float32), verbose=0)
            distances = np.linalg.norm(ours - np.array([descriptors[name] for name in names]), axis=1)
            line += f"; descriptor distance to dlib's: mean {distances.mean():.3f}, max {distances.max():.3f}"
        print(line)
    if model is not None:
        rebuilt = np.array([rebuild_dlib_chip(photo, matrix) for (_, photo, _, _), matrix in zip(faces, matrices)])
        distances = np.linalg.norm(
            model.predict(rebuilt.astype(np.float32), verbose=0) - np.array([descriptors[f[0]] for f in faces]), axis=1
        )
        print(
            f"   baseline, dlib's own landmarks and transform rebuilt here: descriptor distance mean "
            f"{distances.mean():.3f}, max {distances.max():.3f}"
        )


if __name__ == "__main__":
    main()
