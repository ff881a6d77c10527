"""Test helpers: tiny data writers and the contracts every exported model must keep."""

from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FACES = EXAMPLES.parent / "tests" / "data" / "faces"


def run_cli(capsys, *argv):
    """`dlapps ARGV...` in this process: (exit code, stdout, stderr). Argparse's refusals (SystemExit) give their
    code."""
    from dlapps.cli import main

    try:
        code = main(list(map(str, argv)))
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tiny_images(count, size=16, seed=0):
    """Images where 'cat' (label 1) is bright in the top half, so a tiny model can learn it in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    images = rng.integers(0, 100, size=(count, size, size, 3)).astype(np.uint8)
    images[labels == 1, : size // 2] += 150
    return images, labels


def write_tiny_catvnoncat(folder, train=24, test=10, size=16):
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    for name, count, seed in (("train", train, 0), ("test", test, 1)):
        images, labels = tiny_images(count, size, seed)
        with h5py.File(folder / f"{name}_catvnoncat.h5", "w") as file:
            file[f"{name}_set_x"] = images
            file[f"{name}_set_y"] = labels
            file["list_classes"] = np.array([b"non-cat", b"cat"])
    return folder


def write_tiny_image_folder(folder, counts, size=20, seed=0):
    for index, (name, count) in enumerate(counts.items()):
        (folder / name).mkdir(parents=True, exist_ok=True)
        images, _ = tiny_images(count, size, seed + index)
        if name == "cat":
            images[:, : size // 2] = np.minimum(images[:, : size // 2].astype(int) + 150, 255)
        for i, image in enumerate(images):
            suffix = ".jpg" if i % 2 else ".png"
            Image.fromarray(image).save(folder / name / f"{name}_{i}{suffix}")
    return folder


def write_bad_files(folder):
    """The bad inputs a user meets: zero-byte, truncated JPEG, text named .jpg, a 20000x20000 PNG header."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    buffer = folder / "whole.jpg"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buffer, quality=90)
    (folder / "truncated.jpg").write_bytes(buffer.read_bytes()[:300])
    buffer.unlink()
    (folder / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    (folder / "huge.png").write_bytes(huge_png_header(20000, 20000))
    return folder


def huge_png_header(width, height):
    """A PNG whose header claims width x height pixels (the pixel data is missing): decoding must refuse it."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )


def write_lite0_weights(path, image_size=32):
    """Random EfficientNet-Lite0 weights saved to a file: a stand-in for pretrained weights, offline."""
    from dlapps.backbones.efficientnet_lite import build_efficientnet_lite0

    build_efficientnet_lite0((image_size, image_size, 3)).save_weights(path)
    return path


def assert_keras_round_trip(model, inputs, tmp_path):
    """Saving to .keras and loading gives the same outputs."""
    import keras

    path = tmp_path / "round_trip.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)), rtol=1e-5, atol=1e-6)
    return loaded


def assert_serving_matches(model, export_dir, images_uint8, expected_probabilities, atol=1e-5):
    """The exported `serve` endpoint matches the expected probabilities at batch sizes 1 and len(images)."""
    import tensorflow as tf

    served = tf.saved_model.load(str(export_dir))
    for batch in (images_uint8[:1], images_uint8):
        outputs = served.serve(tf.constant(batch))
        np.testing.assert_allclose(
            outputs["probabilities"].numpy(), expected_probabilities[: len(batch)], rtol=1e-4, atol=atol
        )
    return served


def write_clip(path, frames=6, size=(96, 64)):
    """A tiny mp4 (mp4v) of `frames` grey frames of (width, height) `size`, getting lighter; returns the path."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, size)
    for index in range(frames):
        writer.write(np.full((size[1], size[0], 3), 40 * index, np.uint8))
    writer.release()
    return path
