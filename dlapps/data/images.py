"""The one decoding rule: image files and encoded bytes to RGB uint8 pixels, identical in `predict` and in exports.

`decode_image_bytes` is a TensorFlow graph function, so the very same ops run when `predict` reads a file and inside
an exported SavedModel's `serve_bytes` endpoint. The rule, for the formats the graph decodes (JPEG, PNG, GIF, BMP):
- JPEG: libjpeg's accurate integer DCT (Pillow's default too), rotated upright by its EXIF orientation tag (read by
  `exif_orientation` from the bytes, in the graph), and decoded at 1/2, 1/4 or 1/8 scale by the DCT itself when its
  longest side is above `MAX_DECODED_SIDE` (a 12000x9000 photo decodes as 3000x2250 with little memory).
- PNG: 8- or 16-bit, grey or colour, with or without alpha: decoded to 16 bits, composited onto white by its alpha
  (as a browser shows it), divided by 257 and rounded (so 8-bit values come back exactly, and 16-bit 65535 is 255).
- GIF: the first frame. BMP: 24/32-bit.
Other formats (TIFF, PPM/PGM, WebP) are read by Pillow with the same alpha and 16-bit rules; an exported graph cannot
decode them, which `is_graph_decodable` tells in advance.
"""

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".avif")
# Formats that `decode_image_bytes` (and so an exported `serve_bytes` endpoint) decodes.
GRAPH_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# Photo formats a folder often holds that neither TensorFlow nor Pillow decode here (iPhone HEIC/HEIF, JPEG XL, camera
# raw files, vector graphics): named in a folder, never skipped without a word.
UNSUPPORTED_IMAGE_EXTENSIONS = (".heic", ".heif", ".jxl", ".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf",
                                ".orf", ".rw2", ".svg", ".psd")  # fmt: skip
# Refuse images above this many decoded pixels (about 10000 x 10000): decoding them would need gigabytes of memory.
MAX_IMAGE_PIXELS = 100_000_000
# JPEGs whose longest side is above this are decoded at 1/2, 1/4 or 1/8 scale (up to 8 x 4096 = 32768 pixels).
MAX_DECODED_SIDE = 4096
# Files and folders that are never images, whatever their extension: macOS, Windows and Jupyter leftovers.
IGNORED_NAMES = ("thumbs.db", "desktop.ini", "__macosx", ".ipynb_checkpoints")


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and the problem."""


class ImageTooLargeError(ImageReadError):
    """An image above `MAX_IMAGE_PIXELS` once decoded (a decompression bomb, or a panorama too big to hold)."""


def is_hidden(path):
    """True for hidden files and folders and OS leftovers (`.DS_Store`, `._photo.jpg`, `Thumbs.db`, `__MACOSX`)."""
    name = Path(path).name
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def is_image_file(path):
    """True if the file name has an image extension we decode and is not a hidden file or OS leftover."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS and not is_hidden(path)


def walk_files(folder):
    """Every file below a folder, following symbolic links, skipping hidden files and folders; sorted.

    Returns:
        (files, dangling): existing files, and symbolic links whose target is missing.
    """
    import os

    files, dangling = [], []
    for root, folders, names in os.walk(folder, followlinks=True):
        folders[:] = sorted(name for name in folders if not is_hidden(name))
        for name in names:
            path = Path(root) / name
            if is_hidden(name):
                continue
            if path.is_file():
                files.append(path)
            elif path.is_symlink():
                dangling.append(path)
    return sorted(files), sorted(dangling)


# === The graph rule ===


def _tf():
    import tensorflow as tf

    return tf


def exif_orientation(image_bytes):
    """The EXIF orientation tag (1-8) of JPEG bytes, read in the graph; 1 when absent or unreadable.

    Args:
        image_bytes: a scalar `tf.string` tensor holding an encoded image.

    Returns:
        A scalar int32 tensor. Only the first 64 KiB are searched (the EXIF segment comes first in a JPEG).
    """
    tf = _tf()
    head = tf.io.decode_raw(tf.strings.substr(image_bytes, 0, 65536), tf.uint8)
    head = tf.cast(tf.concat([head, tf.zeros([16], tf.uint8)], 0), tf.int32)
    size = tf.shape(head)[0]
    # "Exif\0\0" starts the APP1 payload; the TIFF header follows it.
    pattern = [0x45, 0x78, 0x69, 0x66, 0, 0]
    match = tf.ones([size - 6], tf.bool)
    for offset, byte in enumerate(pattern):
        match = match & tf.equal(head[offset : size - 6 + offset], byte)
    found = tf.where(match)
    tiff = tf.cast(tf.cond(tf.size(found) > 0, lambda: found[0, 0], lambda: tf.constant(0, tf.int64)), tf.int32) + 6
    little = tf.equal(head[tf.minimum(tiff, size - 1)], 0x49)  # "II": little-endian, "MM": big-endian.

    def byte(index):
        return tf.gather(head, tf.clip_by_value(index, 0, size - 1))

    def read16(index):
        return tf.where(little, byte(index) + 256 * byte(index + 1), 256 * byte(index) + byte(index + 1))

    def read32(index):
        low, high = read16(index), read16(index + 2)
        return tf.where(little, low + 65536 * high, 65536 * low + high)

    ifd = tiff + read32(tiff + 4)
    count = tf.clip_by_value(read16(ifd), 0, 256)
    entries = ifd + 2 + 12 * tf.range(count)
    is_orientation = tf.equal(read16(entries), 0x0112)
    values = read16(entries + 8)
    orientation = tf.reduce_max(tf.where(is_orientation, values, 0))
    valid = (tf.size(found) > 0) & (orientation >= 1) & (orientation <= 8)
    return tf.where(valid, orientation, 1)


def apply_orientation(image, orientation):
    """Turn an (H, W, C) image upright for EXIF orientation 1-8, as Pillow's `ImageOps.exif_transpose` does."""
    tf = _tf()
    transpose = lambda: tf.transpose(image, [1, 0, 2])  # noqa: E731
    branches = [
        lambda: image,  # 1: upright
        lambda: tf.reverse(image, [1]),  # 2: mirrored left-right
        lambda: tf.reverse(image, [0, 1]),  # 3: rotated 180
        lambda: tf.reverse(image, [0]),  # 4: mirrored top-bottom
        transpose,  # 5: transposed
        lambda: tf.reverse(transpose(), [1]),  # 6: rotated 90 clockwise to be upright
        lambda: tf.reverse(transpose(), [0, 1]),  # 7: transverse
        lambda: tf.reverse(transpose(), [0]),  # 8: rotated 90 counter-clockwise to be upright
    ]
    return tf.switch_case(tf.clip_by_value(orientation, 1, 8) - 1, branches)


def _decode_jpeg(image_bytes):
    tf = _tf()
    shape = tf.image.extract_jpeg_shape(image_bytes)
    longest = tf.reduce_max(shape[:2])
    # The smallest DCT scale (1, 2, 4, 8) that brings the longest side to MAX_DECODED_SIDE or below.
    scale_index = tf.reduce_sum(tf.cast(longest > MAX_DECODED_SIDE * tf.constant([1, 2, 4]), tf.int32))
    branches = [
        lambda ratio=ratio: tf.io.decode_jpeg(image_bytes, channels=3, ratio=ratio, dct_method="INTEGER_ACCURATE")
        for ratio in (1, 2, 4, 8)
    ]
    image = tf.switch_case(scale_index, branches)
    return apply_orientation(image, exif_orientation(image_bytes))


def _decode_png(image_bytes):
    tf = _tf()
    rgba = tf.cast(tf.io.decode_png(image_bytes, channels=4, dtype=tf.uint16), tf.float32)
    alpha = rgba[..., 3:] / 65535.0
    composite = rgba[..., :3] * alpha + 65535.0 * (1.0 - alpha)
    return tf.cast(tf.round(composite / 257.0), tf.uint8)


def _decode_other(image_bytes):
    tf = _tf()
    return tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)


def decode_image_bytes(image_bytes):
    """Decode one encoded JPEG/PNG/GIF/BMP image to RGB uint8 of shape (H, W, 3), in the graph.

    The module docstring states the rule. Raises `tf.errors.InvalidArgumentError` for bytes it cannot decode.
    """
    tf = _tf()
    is_png = tf.equal(tf.strings.substr(image_bytes, 0, 8), b"\x89PNG\r\n\x1a\n")
    image = tf.case(
        [(tf.io.is_jpeg(image_bytes), lambda: _decode_jpeg(image_bytes)), (is_png, lambda: _decode_png(image_bytes))],
        default=lambda: _decode_other(image_bytes),
    )
    image.set_shape((None, None, 3))
    return image


_decode_eagerly = None


def _graph_decoder():
    """`decode_image_bytes` traced once, for decoding files one by one outside a model."""
    global _decode_eagerly
    if _decode_eagerly is None:
        tf = _tf()
        _decode_eagerly = tf.function(decode_image_bytes, input_signature=[tf.TensorSpec([], tf.string)])
    return _decode_eagerly


# === Files ===


def read_image(path):
    """Read an image file as an RGB uint8 array of shape (height, width, 3), by the module's one decoding rule.

    Raises:
        ImageReadError: the file is missing, empty, not an image, truncated, or too large (above
            `MAX_IMAGE_PIXELS` once decoded; large JPEGs are decoded at reduced scale first).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    return decode_image(path.read_bytes(), path)


def decode_image(image_bytes, name="<bytes>"):
    """Decode an encoded image (any format `read_image` takes) to RGB uint8 (H, W, 3), by the same rule.

    Args:
        image_bytes: the encoded file's bytes.
        name: how errors name the image (a path, or "<bytes>").

    Raises:
        ImageReadError: empty, not an image, truncated or too large; the message starts with `name`.
    """
    if not image_bytes:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image_bytes)) as image:  # Reads the header only.
                image_format, (width, height) = image.format, image.size
                if image_format not in GRAPH_FORMATS:
                    _check_size(name, width, height)
                    return _pillow_to_rgb(image)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not an image file (or an unsupported format)") from None
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{name}: image too large to decode safely ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{name}: corrupt or truncated image ({error})") from None
    if image_format == "JPEG":
        scale = next((s for s in (1, 2, 4, 8) if max(width, height) <= MAX_DECODED_SIDE * s), 8)
        width, height = -(-width // scale), -(-height // scale)
    _check_size(name, width, height)
    import tensorflow as tf

    try:
        return _graph_decoder()(tf.constant(image_bytes)).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        # TensorFlow's message: "Graph execution error:", where it was traced, then the decoder's own words.
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        said = [line for line in lines if not line.startswith(("Graph execution error", "Detected at", "File ", "[["))]
        message = said[-1] if said else (lines[0] if lines else type(error).__name__)
        raise ImageReadError(f"{name}: corrupt or truncated image ({message})") from None


def encode_image(image, format="PNG", **options):
    """RGB uint8 (H, W, 3) as encoded bytes (Pillow; `options` as `Image.save` takes them, e.g. quality=85)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=format, **options)
    return buffer.getvalue()


def full_size(source):
    """The (width, height) an image file or its bytes has at full scale, upright (EXIF orientations 5-8 swap the
    sides): what a JPEG above `MAX_DECODED_SIDE` decoded at reduced scale really measures. None if unreadable.

    Args:
        source: a path or encoded bytes.
    """
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes | bytearray) else source) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1) if image.format == "JPEG" else 1
    except (OSError, ValueError, UnidentifiedImageError):
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def pillow_to_rgb(image, name="<PIL image>"):
    """A PIL image as RGB uint8 (H, W, 3) by the module's rule (EXIF orientation, alpha onto white, 16 bits / 257).

    Raises:
        ImageReadError: the image is too large.
    """
    _check_size(name, *image.size)
    return _pillow_to_rgb(image)


def _check_size(path, width, height):
    if width * height > MAX_IMAGE_PIXELS:
        limit = f"{MAX_IMAGE_PIXELS:,}"
        raise ImageTooLargeError(f"{path}: image too large ({width}x{height} pixels; the limit is {limit})")


def _pillow_to_rgb(image):
    """Pillow's decoding for formats the graph lacks, by the same rules (alpha onto white, 16 bits / 257)."""
    image.seek(0)  # First frame of a multi-page TIFF.
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        array = np.clip(np.round(array / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(array[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:] / 255.0
        return np.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def is_graph_decodable(path):
    """True if an exported graph (`decode_image_bytes`) decodes this file's format (JPEG, PNG, GIF, BMP)."""
    try:
        with Image.open(path) as image:
            return image.format in GRAPH_FORMATS
    except (OSError, UnidentifiedImageError, ValueError):
        return False


def list_image_files(paths):
    """Expand files and folders (recursively, following links, skipping hidden files) into image files and problems.

    Returns:
        (files, problems): `files` are paths to try to decode; `problems` are (path, message) pairs for
        paths that do not exist, dangling links and folders with no images.
    """
    files, problems = [], []
    for path in map(Path, paths):
        if not path.exists():
            problems.append((path, f"{path}: no such file or folder"))
        elif path.is_dir():
            found, dangling = walk_files(path)
            problems.extend((link, f"{link}: broken symbolic link (its target is missing)") for link in dangling)
            unsupported = [p for p in found if p.suffix.lower() in UNSUPPORTED_IMAGE_EXTENSIONS]
            problems.extend((p, f"{p}: {p.suffix.lower()} images are not supported; convert it to JPEG or PNG")
                            for p in unsupported)  # fmt: skip
            found = [p for p in found if is_image_file(p)]
            if not found and not unsupported:
                problems.append((path, f"{path}: folder holds no image files ({', '.join(IMAGE_EXTENSIONS[:5])}, ...)"))
            files.extend(found)
        else:
            files.append(path)
    return files, problems
