import numpy as np
import pytest
from PIL import Image

from models.data.images import ImageReadError, list_image_files, read_image
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


def test_list_image_files_reports_missing_and_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    files, problems = list_image_files([EXAMPLES, tmp_path / "empty", tmp_path / "nope.jpg"])
    assert len(files) == 5
    assert [str(p) for p, _ in problems] == [str(tmp_path / "empty"), str(tmp_path / "nope.jpg")]
