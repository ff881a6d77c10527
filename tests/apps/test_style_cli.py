"""Neural style transfer by optimisation, through its command line, on tiny images."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from dlapps.cli import main as dlapps
from tests.helpers import EXAMPLES


def test_optimisation_lowers_the_loss_and_writes_the_image_and_curves(tmp_path, capsys):
    code = dlapps([
        "style", "predict", str(EXAMPLES / "chelsea.png"), "--style", str(EXAMPLES / "rocket.jpg"),
        "--method", "optimise", "--steps", "6", "--max-size", "48", "--output", str(tmp_path), "--json",
        "--save-every", "3"
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["last"]["style"] < result["first"]["style"]  # From the content photo, towards the style.
    image = np.asarray(Image.open(tmp_path / "chelsea_stylised.png"))
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8
    assert (tmp_path / "chelsea_losses.png").is_file() and (tmp_path / "chelsea_step0006.png").is_file()
    history = json.loads((tmp_path / "chelsea_losses.json").read_text())
    assert [row["step"] for row in history] == list(range(7))  # the start, then the image after each of 6 steps
    # The first steps' warmed-up rate: no step's total above the start (at full rate it doubled at step 2).
    assert max(row["total"] for row in history) <= history[0]["total"]
    # Big photos are shrunk to --max-size with a notice naming the file (both modes share the rule).
    assert "chelsea.png" in captured.err and "downscaled to a longest side of 48" in captured.err


def test_style_weights_must_match_the_styles(tmp_path, capsys):
    code = dlapps([
        "style", "predict", str(EXAMPLES / "chelsea.png"), "--style", str(EXAMPLES / "rocket.jpg"),
        "--style-weights", "0.5", "0.5", "--output", str(tmp_path)
    ])  # fmt: skip
    assert code == 2 and "2 weights for 1 style" in capsys.readouterr().err


def test_predict_never_writes_into_saved_models(capsys):
    """Only `style predict` took any --output, the shipped models' folder too."""
    from dlapps.presets import SHIPPED_DIR

    target = SHIPPED_DIR / "style_transfer" / "mine"
    code = dlapps(["style", "predict", str(EXAMPLES / "chelsea.png"), "--style", str(EXAMPLES / "rocket.jpg"),
                   "--output", str(target)])  # fmt: skip
    assert code == 2 and "never written by a command" in capsys.readouterr().err and not target.exists()


def test_a_run_of_failures_leaves_no_empty_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a photo")
    for method in ("arbitrary", "optimise"):
        code = dlapps(["style", "predict", "broken.jpg", "--style", str(EXAMPLES / "rocket.jpg"), "--method", method])
        assert code == 2 and "broken.jpg" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_fast_model_trains_predicts_evaluates_and_exports(tmp_path, capsys):
    import tensorflow as tf

    photos = tmp_path / "photos"
    photos.mkdir()
    for index, name in enumerate(["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]):
        Image.open(EXAMPLES / name).convert("RGB").resize((40, 32)).save(photos / f"p{index}.png")
    model = tmp_path / "model"
    code = dlapps([
        "style", "train", "--style", str(EXAMPLES / "rocket.jpg"), "--content", str(photos), "--dev",
        str(photos / "p0.png"), "--output", str(model), "--epochs", "2", "--batch-size", "2", "--image-size",
        "32", "--style-size", "32", "--filters", "4", "8", "8", "--residual-blocks", "1", "--json"
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code in (0, None), captured.err
    history = json.loads((model / "history.json").read_text())
    assert len(history) == 2 and all(np.isfinite(row["total"]) for row in history)
    assert (model / "dev_epoch002.jpg").is_file() and (model / "model.keras").is_file()
    # Predict any size; the image round-trips through the saved PNG.
    code = dlapps(
        ["style", "predict", str(photos / "p1.png"), "--model", str(model), "--output", str(tmp_path / "out"), "--json"]
    )
    assert code in (0, None)
    written = json.loads(capsys.readouterr().out)["output"]
    assert np.asarray(Image.open(written)).shape == (32, 40, 3)
    # The SavedModel answers as predict does (same uint8 pixels).
    assert dlapps(["style", "export", "--model", str(model), "--output", str(tmp_path / "sm")]) in (0, None)
    capsys.readouterr()
    exported = tf.saved_model.load(str(tmp_path / "sm")).signatures["serve"]
    pixels = np.asarray(Image.open(photos / "p1.png").convert("RGB"))[None]
    np.testing.assert_array_equal(
        exported(images=tf.constant(pixels))["images"].numpy()[0], np.asarray(Image.open(written))
    )
    # Same stems get distinct outputs; a photo too small for the network is named and skipped, the others stylised;
    # options of the optimisation mode are named as ignored.
    Image.open(photos / "p1.png").save(photos.parent / "p1.jpg")
    Image.open(photos / "p1.png").resize((8, 8)).save(photos.parent / "tiny.png")
    code = dlapps(["style", "predict", str(photos / "p1.png"), str(photos.parent / "p1.jpg"),
                   str(photos.parent / "tiny.png"), "--model", str(model), "--output", str(tmp_path / "out2"),
                   "--steps", "5", "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2 and "tiny.png: 8x8 pixels" in captured.err and "--steps: options of the optim" in captured.err
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["path"] for r in records if "error" in r] == [str(photos.parent / "tiny.png")]  # a record for it too
    outputs = sorted(r["output"] for r in records if "error" not in r)
    assert [Path(o).name for o in outputs] == ["p1_jpg_" + json.loads((model / "config.json").read_text())["style"]
                                               + ".png", "p1_png_" + json.loads((model / "config.json").read_text())[
                                                   "style"] + ".png"]  # fmt: skip
    # TFLite (one fixed size) and ONNX (any size) answer as predict does.
    import onnxruntime

    assert dlapps(["style", "export", "--model", str(model), "--format", "onnx",
                   "--output", str(tmp_path / "s.onnx")]) in (0, None)  # fmt: skip
    session = onnxruntime.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    onnx_pixels = session.run(None, {"pixels": pixels})[0][0]
    assert np.abs(onnx_pixels.astype(int) - np.asarray(Image.open(written)).astype(int)).max() <= 1
    # Sides that are not multiples of 4 (the fault: ONNX's C-style Mod made a negative pad and a broadcast error).
    odd = np.asarray(Image.open(EXAMPLES / "chelsea.png").convert("RGB").resize((45, 31)))[None]
    keras_pixels = exported(images=tf.constant(odd))["images"].numpy()
    assert np.abs(session.run(None, {"pixels": odd})[0].astype(int) - keras_pixels.astype(int)).max() <= 1
    square = np.asarray(Image.open(photos / "p1.png").convert("RGB").resize((32, 32)))[None]
    assert dlapps(["style", "export", "--model", str(model), "--format", "tflite", "--image-size", "32",
                   "--output", str(tmp_path / "s.tflite")]) in (0, None)  # fmt: skip
    runner = tf.lite.Interpreter(str(tmp_path / "s.tflite")).get_signature_runner()
    expected = exported(images=tf.constant(square))["images"].numpy()
    assert np.abs(runner(pixels=square)["images"].astype(int) - expected.astype(int)).max() <= 1
    capsys.readouterr()
    code = dlapps([
        "style", "evaluate", str(photos), "--model", str(model), "--compare", "1", "--steps", "2",
        "--output", str(tmp_path / "eval"), "--json"
    ])  # fmt: skip
    assert code in (0, None)
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 4 and "optimised_mean" in result and (tmp_path / "eval" / "contact_sheet.jpg").is_file()
    # A second style starts from the first model's weights; a network of another shape is refused.
    common = ["style", "train", "--style", str(EXAMPLES / "chelsea.png"), "--content", str(photos), "--epochs", "1",
              "--batch-size", "2", "--image-size", "32", "--style-size", "32", "--init-from", str(model)]  # fmt: skip
    code = dlapps([*common, "--output", str(tmp_path / "m2"), "--filters", "4", "8", "8", "--residual-blocks", "1"])
    assert code in (0, None) and json.loads((tmp_path / "m2" / "config.json").read_text())["init_from"]
    code = dlapps([*common, "--output", str(tmp_path / "m3"), "--filters", "4", "8", "16", "--residual-blocks", "1"])
    assert code == 2 and "pass the same --filters" in capsys.readouterr().err


def test_a_folder_that_is_not_a_style_model_is_refused(tmp_path, capsys):
    code = dlapps(["style", "predict", str(EXAMPLES / "chelsea.png"), "--model", str(tmp_path)])
    assert code == 2 and "not a model folder" in capsys.readouterr().err


def test_lbfgs_lowers_the_loss_and_explain_prints_the_costs(tmp_path, capsys):
    code = dlapps([
        "style", "predict", str(EXAMPLES / "chelsea.png"), "--style", str(EXAMPLES / "rocket.jpg"), "--steps", "8",
        "--method", "optimise",
        "--max-size", "40", "--output", str(tmp_path), "--optimizer", "lbfgs", "--explain", "--preserve-colors",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code in (0, None), captured.err
    assert "Gram matrix" in captured.out and "J_content" in captured.out
    history = json.loads((tmp_path / "chelsea_losses.json").read_text())
    assert history[-1]["total"] < history[0]["total"]
    # --explain's figures are the run's own (first and last step), as the summary line prints them.
    assert f"= {history[0]['total']:.4g} -> {history[-1]['total']:.4g}" in captured.out
    assert f"total loss {history[0]['total']:.4g} -> {history[-1]['total']:.4g}" in captured.out


def test_preserve_colors_keeps_the_content_chroma():
    import tensorflow as tf

    from dlapps.tasks.neural_style import keep_colours

    rng = np.random.default_rng(0)
    stylised, content = rng.uniform(0.2, 0.8, (2, 6, 5, 3)).astype(np.float32)
    kept = keep_colours(stylised, content)
    yuv = tf.image.rgb_to_yuv(kept).numpy()
    np.testing.assert_allclose(yuv[..., 0], tf.image.rgb_to_yuv(stylised).numpy()[..., 0], atol=1e-5)
    np.testing.assert_allclose(yuv[..., 1:], tf.image.rgb_to_yuv(content).numpy()[..., 1:], atol=1e-5)


def test_output_names_never_collide():
    from dlapps.cli.common import output_names

    names = output_names([Path("a/photo.png"), Path("a/photo.jpg"), Path("b/photo.jpg"), Path("a/other.png")])
    assert names == {Path("a/photo.png"): "photo_png", Path("a/photo.jpg"): "a_photo_jpg",
                     Path("b/photo.jpg"): "b_photo_jpg", Path("a/other.png"): "other"}  # fmt: skip


def test_a_tiny_style_image_is_upscaled_and_a_thin_strip_names_the_max_size_that_works(tmp_path, capsys):
    Image.open(EXAMPLES / "rocket.jpg").convert("RGB").resize((12, 12)).save(tmp_path / "tiny_style.png")
    code = dlapps(["style", "predict", str(EXAMPLES / "chelsea.png"), "--style", str(tmp_path / "tiny_style.png"),
                   "--steps", "1", "--max-size", "32", "--method", "optimise",
                   "--output", str(tmp_path / "out")])  # fmt: skip
    captured = capsys.readouterr()
    assert code in (0, None), captured.err
    assert "tiny_style.png: 12x12 upscaled to 16x16 (the loss network needs a side of at least 16" in captured.err
    Image.open(EXAMPLES / "chelsea.png").convert("RGB").resize((400, 20)).save(tmp_path / "strip.png")
    code = dlapps(["style", "predict", str(tmp_path / "strip.png"), "--style", str(EXAMPLES / "rocket.jpg"),
                   "--steps", "1", "--max-size", "64", "--method", "optimise",
                   "--output", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "strip.png: 64x3 pixels" in err and "--max-size 320 works for this 400x20 image" in err
