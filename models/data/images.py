"""Decode image files to RGB uint8 arrays the way phone photos and odd files need.

Pillow does the decoding because it handles what `tf.io.decode_image` does not: EXIF orientation, 16-bit PNG,
palette and RGBA images, and a cheap JPEG downscale (`draft`) for huge photos.
"""

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
# Refuse images above this many pixels (about 10000 x 10000): decoding them would need gigabytes of memory.
# JPEGs are shrunk while decoding instead (Pillow's draft mode), so a 20000 x 20000 phone panorama still works.
MAX_IMAGE_PIXELS = 100_000_000


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and the problem."""


def is_image_file(path):
    """True if the file name has an image extension we decode."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def read_image(path, max_side=None):
    """Read an image file as an RGB uint8 array of shape (height, width, 3).

    Handles JPEG, PNG (8 and 16 bit), BMP, GIF (first frame), grayscale, palette and RGBA images, and rotates
    phone photos upright by their EXIF orientation.

    Args:
        path: the image file.
        max_side: for JPEGs above `MAX_IMAGE_PIXELS`, the size to decode at (at least), default 4096.

    Raises:
        ImageReadError: the file is missing, empty, not an image, truncated, or too large.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return _to_rgb_array(image, path, max_side)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (or an unsupported format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageReadError(f"{path}: image too large to decode safely ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{path}: corrupt or truncated image ({error})") from None


def _to_rgb_array(image, path, max_side):
    width, height = image.size
    if image.format == "JPEG" and width * height > MAX_IMAGE_PIXELS:
        # Decode at 1/2, 1/4 or 1/8 scale directly from the DCT coefficients: memory stays small.
        target = max_side or 4096
        image.draft("RGB", (target, target))
        width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageReadError(f"{path}: image too large ({width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS:,})")
    image.seek(0)  # First frame of a GIF or multi-page TIFF.
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit integer) grayscale: scale to 8 bits rather than clipping at 255.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        array = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(array[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Composite transparent pixels onto white, as a browser shows them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def list_image_files(paths):
    """Expand files and folders (recursively) into a sorted list of image files, and a list of problems.

    Returns:
        (files, problems): `files` are paths to try to decode; `problems` are (path, message) pairs for
        paths that do not exist or folders with no images.
    """
    files, problems = [], []
    for path in map(Path, paths):
        if not path.exists():
            problems.append((path, f"{path}: no such file or folder"))
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
            if not found:
                problems.append((path, f"{path}: folder holds no image files ({', '.join(IMAGE_EXTENSIONS[:5])}, ...)"))
            files.extend(found)
        else:
            files.append(path)
    return files, problems
