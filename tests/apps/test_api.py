"""The Python API (`import dlapps`): every app class on tiny models, the inputs rule, presets, and the CLI answering
exactly as the API does."""

import io
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

import dlapps
from dlapps.cli import main as cli
from dlapps.results import Failure
from tests.apps.test_detect_cli import write_squares
from tests.helpers import EXAMPLES, FACES, write_tiny_image_folder


def _json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# === Inputs and presets ===


def test_every_kind_of_input_gives_the_same_answer():
    cat = dlapps.CatClassifier.from_preset("cat")
    path = EXAMPLES / "chelsea.png"
    pixels = np.asarray(Image.open(path).convert("RGB"))
    answers = [cat.predict(item).probability for item in (path, str(path), path.read_bytes(), Image.open(path),
                                                           pixels)]  # fmt: skip
    assert max(answers) - min(answers) < 1e-6 and answers[0] > 0.5
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*float64.*astype\('uint8'\)"):
        cat.predict(np.zeros((8, 8, 3)))
    # RGBA arrays are composited onto white, as RGBA files are.
    rgba = np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
    assert abs(cat.predict(rgba).probability - answers[0]) < 1e-6


def test_presets_are_listed_and_a_wrong_one_names_the_right_ones():
    assert set(dlapps.list_presets("style")) == {"starry_night", "kandinsky", "great_wave"}
    with pytest.raises(ValueError, match="fruit, raccoon"):
        dlapps.ObjectDetector.from_preset("starry_night")
    assert type(dlapps.load("raccoon")).__name__ == "ObjectDetector"


def test_importing_dlapps_loads_no_tensorflow_and_each_shipped_folder_loads_on_its_own():
    code = "import sys, dlapps; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    for preset in dlapps.list_presets():
        # A fresh process that imports only dlapps: every custom layer is registered by loading itself.
        code = f"import dlapps; print(type(dlapps.load({preset!r})).__name__)"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]


def test_the_library_prints_nothing_and_leaves_warning_filters_alone(tmp_path, capsys):
    before = list(warnings.filters)
    detector = dlapps.ObjectDetector.from_preset("raccoon")
    results = list(detector.predict_iter([EXAMPLES / "raccoons.jpg", tmp_path / "missing.jpg"]))
    assert warnings.filters == before
    assert capsys.readouterr().out == ""
    assert results[0].ok and not results[1].ok and "missing.jpg" in results[1].error


# === Detector ===


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    root = tmp_path_factory.mktemp("api_detect")
    write_squares(root / "data", count=4, size=64)
    trained = dlapps.ObjectDetector.train(
        root / "data", root / "model", dev=str(root / "data"), image_size=64, epochs=[1, 1], batch_size=4,
        no_augment=True,
    )  # fmt: skip
    return root, trained


def test_detector_predicts_streams_evaluates_and_exports(detector, tmp_path, capsys):
    root, trained = detector
    assert trained.report["output"] and trained.class_names == ["blue", "red"]
    (tmp_path / "bad.jpg").write_text("not a picture")
    results = list(trained.predict_iter([root / "data" / "img0.png", tmp_path / "bad.jpg", root / "data" / "img1.png"]))
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1], Failure) and "bad.jpg" in results[1].to_dict()["error"]
    record = results[0].to_dict()
    assert record["width"] == 64 and record["height"] == 64 and results[0].plot().shape == (64, 64, 3)
    # The command line prints exactly the API's records (a failed file gets its record too).
    code = cli(["detect", "predict", str(root / "data" / "img0.png"), str(tmp_path / "bad.jpg"), "--model",
                str(root / "model"), "--output", str(tmp_path / "out"), "--json"])  # fmt: skip
    lines = _json_lines(capsys.readouterr().out)
    assert code == 2 and lines[1]["error"].startswith(str(tmp_path / "bad.jpg"))
    assert lines[0] == {**record, "output": str(tmp_path / "out" / "img0.jpg")}  # + the picture it wrote
    report = trained.evaluate(root / "data", output=str(tmp_path / "eval"))
    assert 0 <= report["map50"] <= 1 and report["output"] == str(tmp_path / "eval")
    exported = trained.export("saved_model", output=str(tmp_path / "serving"))
    assert exported["path"] == str(tmp_path / "serving")
    # The verbs print nothing for a Python caller: the records come back, the summary goes to the dlapps logger.
    assert capsys.readouterr().out == ""


def test_options_are_the_command_lines_with_its_checks(detector, tmp_path):
    root, trained = detector
    with pytest.raises(TypeError, match="unexpected option 'epoch'; did you mean 'epochs'"):
        dlapps.ObjectDetector.train("data", "out", epoch=3)
    with pytest.raises(ValueError, match=r"epochs: expected 2 values \(HEAD, FINE_TUNE\); received 3"):
        dlapps.ObjectDetector.train("data", "out", epochs=3)
    with pytest.raises(ValueError, match="score_threshold: expected a number from 0 to 1"):
        dlapps.ObjectDetector.from_folder(trained.folder, score_threshold=5)
    with pytest.raises(ValueError, match="ships no preset"):
        dlapps.ImageClassifier.from_preset()
    with pytest.raises(ValueError, match="unknown app 'detector'"):
        dlapps.list_presets("detector")
    with pytest.raises(TypeError, match=r"StyleTransfer.optimise\(\) got an unexpected option 'step'; did you"):
        dlapps.StyleTransfer.optimise(EXAMPLES / "chelsea.png", EXAMPLES / "rocket.jpg", step=3)
    # Thresholds for one call; the instance's stay.
    image = root / "data" / "img1.png"
    assert len(trained.predict(image, score_threshold=1.0)) == 0 and trained.score_threshold < 1.0
    assert len(trained.predict(image, max_detections=1)) <= 1
    found = trained.predict(image, score_threshold=0.0)
    assert [label for _, label, _ in found] == found.labels
    with pytest.raises(ValueError, match="learning_rate"):
        dlapps.ObjectDetector.train("data", "out", learning_rate=[-1])
    with pytest.raises(ValueError, match="image_size: expected one value"):
        dlapps.ObjectDetector.train("data", "out", image_size=[64, 64])
    strict = dlapps.ObjectDetector.from_folder(trained.folder, score_threshold=0.99, max_detections=1)
    assert strict.score_threshold == 0.99 and strict.max_detections == 1
    # Its evaluation and its export use its thresholds, as its predict does (they used the model's stored ones).
    assert strict.evaluate(root / "data", output=str(tmp_path / "eval"))["score_threshold"] == 0.99
    strict.export("saved_model", output=str(tmp_path / "serving"))
    info = json.loads((tmp_path / "serving" / "assets" / "model_info.json").read_text())
    assert (info["score_threshold"], info["max_detections"]) == (0.99, 1)
    assert strict.evaluate(root / "data", output=str(tmp_path / "eval"), score_threshold=0.5)["score_threshold"] == 0.5


# === Classifiers ===


def test_image_classifier_trains_predicts_in_batches_and_exports(tmp_path, capsys):
    folder = write_tiny_image_folder(tmp_path / "pictures", {"ant": 8, "bee": 8})
    classifier = dlapps.ImageClassifier.train(folder, tmp_path / "model", weights="none", image_size=32,
                                              head_epochs=1, fine_tune_epochs=1, batch_size=8)  # fmt: skip
    files = sorted((folder / "ant").iterdir())[:3]
    one_by_one = [classifier.predict(f).probabilities for f in files]
    batched = [r.probabilities for r in classifier.predict_iter(files, batch_size=2)]
    for a, b in zip(one_by_one, batched, strict=True):
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-5 for k in a)
    cli(["finetune", "predict", *map(str, files), "--model", str(tmp_path / "model"), "--json"])
    printed = _json_lines(capsys.readouterr().out)
    assert [p["label"] for p in printed] == [r.label for r in classifier.predict_iter(files)]
    report = classifier.evaluate(folder)
    assert 0 <= report["accuracy"] <= 1
    assert classifier.export("tflite")["path"].endswith(".tflite")


def test_cat_classifier_trains_and_answers_as_the_command_line(tiny_h5, tmp_path, capsys):
    cat = dlapps.CatClassifier.train(tiny_h5, tmp_path / "cat", model="logreg", epochs=2, image_size=16)
    image = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(image, format="PNG")
    (tmp_path / "bright.png").write_bytes(image.getvalue())
    result = cat.predict(tmp_path / "bright.png")
    cli(["cat", "predict", str(tmp_path / "bright.png"), "--model", str(tmp_path / "cat"), "--json"])
    assert _json_lines(capsys.readouterr().out) == [result.to_dict()]
    assert set(cat.evaluate(tiny_h5 / "test_catvnoncat.h5").values) >= {"accuracy", "roc_auc"}


# === Faces and style ===


def test_faces_verify_enroll_and_identify(tmp_path):
    faces = dlapps.FaceVerifier.from_preset()
    same = faces.verify(EXAMPLES / "astronaut.png", FACES / "astronaut_face.jpg")
    assert same.same_person and same.faces_a == 1 and same.to_dict()["same_person"] is True
    gallery = faces.gallery(tmp_path / "people.db")
    # The same name typed two ways (composed and decomposed é) is one person.
    faces.enroll(gallery, "Eil\u00e9en", [EXAMPLES / "astronaut.png"])
    faces.enroll(gallery, "Eile\u0301en", [FACES / "astronaut_face.jpg"])
    assert gallery.people() == [("Eil\u00e9en", 2)]
    assert dlapps.Gallery(tmp_path / "people.db").people() == [("Eil\u00e9en", 2)]  # read-only, any model's
    found = list(faces.identify_iter([FACES / "astronaut_face.jpg", EXAMPLES / "coffee.png"], gallery))
    assert found[0].name == "Eil\u00e9en" and not found[1].ok and found[1].kind == "NoFaceError"
    assert faces.embed(EXAMPLES / "astronaut.png").shape == (128,)


def test_style_stylises_any_input_and_optimises(tmp_path):
    style = dlapps.StyleTransfer.from_preset("starry_night")
    pixels = np.asarray(Image.open(EXAMPLES / "chelsea.png").convert("RGB").resize((45, 30)))
    result = style.stylise(pixels)
    assert result.image.shape == (30, 45, 3) and result.style == "starry_night"
    assert (result.image != pixels).mean() > 0.5
    with pytest.raises(ValueError, match="strength: expected a number from 0 to 1"):
        style.stylise(pixels, strength=2)
    optimised = dlapps.StyleTransfer.optimise(pixels, EXAMPLES / "rocket.jpg", steps=3, max_size=32)
    assert optimised.image.shape == (21, 32, 3) and len(optimised.history) == 4


def test_boxes_of_a_jpeg_decoded_at_reduced_scale_are_in_its_full_size_pixels(detector, tmp_path):
    root, trained = detector
    square = Image.open(root / "data" / "img0.png").convert("RGB")
    wide = Image.new("RGB", (8400, 640), (200, 200, 200))
    for left in range(0, 8400, 640):
        wide.paste(square.resize((640, 640)), (left, 0))
    wide.save(tmp_path / "wide.jpg", quality=90)  # above 4,096 px: decoded at 1/4 scale
    result = trained.predict(tmp_path / "wide.jpg")
    assert (result.width, result.height) == (8400, 640) and result.image.shape[:2] == (160, 2100)
    assert len(result) and result.boxes[:, 2].max() > 2100 and result.boxes[:, 3].max() <= 640
    assert result.plot().shape == (160, 2100, 3)


def test_a_batch_of_images_of_any_sizes_answers_as_predict_one_by_one(tmp_path):
    detector = dlapps.ObjectDetector.from_preset("raccoon")
    Image.open(EXAMPLES / "raccoons.jpg").resize((200, 333)).save(tmp_path / "tall.png")
    images = [EXAMPLES / "raccoons.jpg", EXAMPLES / "chelsea.png", tmp_path / "tall.png", EXAMPLES / "rocket.jpg"]
    alone = [detector.predict(image, score_threshold=0.05) for image in images]
    together = detector.predict_batch(images, score_threshold=0.05)
    assert sum(len(result) for result in alone) >= 3
    for one, batched in zip(alone, together, strict=True):
        assert batched.to_dict()["path"] == one.to_dict()["path"]
        assert (batched.width, batched.height) == (one.width, one.height)
        assert np.array_equal(batched.classes, one.classes)
        np.testing.assert_allclose(batched.boxes, one.boxes, atol=0.05)
        np.testing.assert_allclose(batched.scores, one.scores, atol=1e-4)
    # Different thresholds in one list: one network call per set of thresholds, each answer its own.
    mixed = detector.detect_prepared([detector.prepare(images[0], 0.05), detector.prepare(images[0], 0.9)])
    assert len(mixed[0]) == len(alone[0]) and len(mixed[1]) == len(detector.predict(images[0], score_threshold=0.9))
