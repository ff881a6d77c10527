import numpy as np
import pytest
from PIL import Image, ImageOps

from dlapps.data.images import ImageReadError, is_graph_decodable, list_image_files, read_image
from tests.helpers import EXAMPLES, write_bad_files


def test_reads_formats_as_rgb_uint8(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.bmp")
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    for name in ("a.png", "a.bmp"):
        np.testing.assert_array_equal(read_image(tmp_path / name), rgb)
    jpeg = read_image(tmp_path / "a.jpg")
    assert jpeg.shape == (12, 10, 3) and jpeg.dtype == np.uint8


def test_grayscale_rgba_and_16_bit(tmp_path):
    Image.fromarray(np.full((4, 5), 77, np.uint8), mode="L").save(tmp_path / "gray.png")
    assert read_image(tmp_path / "gray.png").tolist() == np.full((4, 5, 3), 77).tolist()
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0  # One transparent pixel: shown on white.
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    image = read_image(tmp_path / "rgba.png")
    assert image[1, 1].tolist() == [255, 0, 0] and image[0, 0].tolist() == [255, 255, 255]
    sixteen = np.full((4, 5), 65535, np.uint16)
    sixteen[0, 0] = 0
    Image.fromarray(sixteen).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image[1, 1].tolist() == [255, 255, 255] and image[0, 0].tolist() == [0, 0, 0]


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 6), color) for color in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    image = read_image(tmp_path / "anim.gif")
    assert image.shape == (6, 6, 3) and image[0, 0, 0] > 200 and image[0, 0, 2] < 50


def test_exif_orientation_is_applied(tmp_path):
    # A 4-wide, 2-tall photo tagged "rotate 90 degrees" (orientation 6) must come back 2 wide, 4 tall.
    image = Image.new("RGB", (4, 2), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(tmp_path / "phone.jpg", exif=exif)
    assert read_image(tmp_path / "phone.jpg").shape == (4, 2, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path, orientation):
    pixels = np.random.default_rng(orientation).integers(0, 255, (6, 9, 3), dtype=np.uint8)
    pixels[:3, :3] = 255  # A bright corner, so that a wrong turn cannot pass by symmetry.
    exif = Image.Exif()
    exif[0x0112] = orientation
    for name, kwargs in (("big.jpg", {"quality": 100}), ("small.jpg", {"quality": 100, "subsampling": 0})):
        Image.fromarray(pixels).save(tmp_path / name, exif=exif, **kwargs)
        with Image.open(tmp_path / name) as image:
            expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        np.testing.assert_array_equal(read_image(tmp_path / name), expected)


def test_exif_in_a_big_endian_header_and_a_missing_tag(tmp_path):
    image = Image.new("RGB", (4, 2), (10, 20, 30))
    image.save(tmp_path / "plain.jpg")
    assert read_image(tmp_path / "plain.jpg").shape == (2, 4, 3)
    # A hand-made big-endian ("MM") APP1 segment with orientation 8.
    tiff = b"MM\x00\x2a" + (8).to_bytes(4, "big") + (1).to_bytes(2, "big")
    tiff += (0x0112).to_bytes(2, "big") + (3).to_bytes(2, "big") + (1).to_bytes(4, "big") + (8).to_bytes(2, "big")
    tiff += b"\x00\x00" + (0).to_bytes(4, "big")
    payload = b"Exif\x00\x00" + tiff
    data = (tmp_path / "plain.jpg").read_bytes()
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    (tmp_path / "mm.jpg").write_bytes(data[:2] + segment + data[2:])
    assert read_image(tmp_path / "mm.jpg").shape == (4, 2, 3)


def test_alpha_is_composited_on_white_whatever_the_hidden_colour(tmp_path):
    for name, hidden in (("blue.png", (0, 0, 255)), ("red.png", (255, 0, 0))):
        rgba = np.zeros((4, 4, 4), np.uint8)
        rgba[..., :3] = hidden
        rgba[:, 2:, :3] = (0, 128, 0)
        rgba[:, 2:, 3] = 255
        rgba[0, 0] = (*hidden, 128)  # Half transparent.
        Image.fromarray(rgba, mode="RGBA").save(tmp_path / name)
    blue, red = read_image(tmp_path / "blue.png"), read_image(tmp_path / "red.png")
    np.testing.assert_array_equal(blue[1:, :2], 255)
    np.testing.assert_array_equal(blue[1:], red[1:])
    assert blue[0, 0].tolist() == [127, 127, 255] and blue[0, 3].tolist() == [0, 128, 0]


def test_sixteen_bit_png_is_divided_by_257(tmp_path):
    for name, value in (("a.png", 255), ("b.png", 256)):
        pixels = np.full((3, 3), value, np.uint16)
        pixels[0, 0] = 65535
        Image.fromarray(pixels).save(tmp_path / name)
    a, b = read_image(tmp_path / "a.png"), read_image(tmp_path / "b.png")
    assert a[1, 1].tolist() == b[1, 1].tolist() == [1, 1, 1]
    assert a[0, 0].tolist() == [255, 255, 255]
    rgb16 = tmp_path / "rgb16.png"
    _write_png16_rgb(rgb16, np.array([[[65535, 257 * 100, 0]]], np.uint16))
    assert read_image(rgb16).tolist() == [[[255, 100, 0]]]


def _write_png16_rgb(path, pixels):
    """A 16-bit RGB PNG (Pillow cannot write one)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def test_big_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    import dlapps.data.images as images

    monkeypatch.setattr(images, "MAX_DECODED_SIDE", 16)
    monkeypatch.setattr(images, "_decode_eagerly", None)  # The graph reads the limit when it is traced.
    Image.new("RGB", (100, 40), (200, 10, 10)).save(tmp_path / "wide.jpg")
    assert read_image(tmp_path / "wide.jpg").shape == (5, 13, 3)  # 1/8 scale, rounded up.
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 50)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(tmp_path / "wide.jpg")


def test_pillow_formats_follow_the_same_rules(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.ppm")
    Image.fromarray(pixels).save(tmp_path / "a.tiff")
    np.testing.assert_array_equal(read_image(tmp_path / "a.ppm"), pixels)
    np.testing.assert_array_equal(read_image(tmp_path / "a.tiff"), pixels)
    assert not is_graph_decodable(tmp_path / "a.tiff") and not is_graph_decodable(tmp_path / "a.ppm")


def test_hidden_files_links_and_leftovers(tmp_path):
    folder = tmp_path / "photos"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    (folder / "album").mkdir()
    Image.new("RGB", (4, 4)).save(folder / "a.jpg")
    Image.new("RGB", (4, 4)).save(folder / ".ipynb_checkpoints" / "a-checkpoint.jpg")
    Image.new("RGB", (4, 4)).save(folder / "album" / "b.png")
    (folder / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / ".DS_Store").write_bytes(b"\x00")
    (folder / "Thumbs.db").write_bytes(b"\x00")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.new("RGB", (4, 4)).save(elsewhere / "c.png")
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (folder / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    files, problems = list_image_files([folder])
    assert [p.relative_to(folder).as_posix() for p in files] == ["a.jpg", "album/b.png", "linked/c.png"]
    assert [p.name for p, _ in problems] == ["gone.jpg"] and "broken symbolic link" in problems[0][1]


@pytest.mark.parametrize(
    "name, message",
    [
        ("empty.jpg", "empty file"),
        ("truncated.jpg", "corrupt or truncated"),
        ("notes.jpg", "not an image"),
        ("huge.png", "too large"),
        ("missing.png", "no such file"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path, name, message):
    folder = write_bad_files(tmp_path / "bad")
    with pytest.raises(ImageReadError, match=message) as error:
        read_image(folder / name)
    assert name in str(error.value)


def test_a_jpeg_cut_in_its_pixel_data_says_what_the_decoder_said(tmp_path):
    # Pillow reads the header; TensorFlow's decoder fails part-way, and its message is the last line, not the first.
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), np.uint8)).save(tmp_path / "whole.jpg", quality=95)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="corrupt or truncated") as error:
        read_image(tmp_path / "half.jpg")
    assert "half.jpg" in str(error.value) and "Graph execution error" not in str(error.value)
    assert "JPEG" in str(error.value)


def test_list_image_files_reports_missing_and_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    files, problems = list_image_files([EXAMPLES, tmp_path / "empty", tmp_path / "nope.jpg"])
    assert len(files) == len([p for p in EXAMPLES.iterdir() if p.suffix in (".png", ".jpg")])  # SOURCE.md is not one
    assert [str(p) for p, _ in problems] == [str(tmp_path / "empty"), str(tmp_path / "nope.jpg")]


def test_crop_augmentation_zooms_in_and_shifts_and_keeps_the_shape():
    from dlapps.data.pipelines import build_augmentation

    augmentation = build_augmentation((32, 32), crop=0.5, seed=0)
    layers = {layer.name: layer for layer in augmentation.layers}
    assert layers["random_zoom"].height_factor == (-0.5, 0.1) and layers["random_shift"].height_factor == 0.15
    assert "random_shift" not in {layer.name for layer in build_augmentation((32, 32)).layers}
    images = np.zeros((4, 32, 32, 3), np.float32)
    images[:, 12:20, 12:20] = 255.0  # a bright square in the middle
    out = np.asarray(augmentation(images, training=True))
    assert out.shape == images.shape
    # Zoomed in, the square covers more of the frame on average than it did.
    assert (out > 128).mean() > (images > 128).mean()
