"""The object detector through its command line: a tiny detector learns coloured squares, finds them, exports."""

import json

import numpy as np
import pytest
from PIL import Image

from dlapps.cli import main as dlapps
from dlapps.metrics.detection import box_iou

COLOURS = {"red": (230, 30, 30), "blue": (30, 30, 230)}


def write_squares(folder, count=8, size=96, seed=0):
    """VOC folder of `count` grey images with one or two red or blue squares each; returns the boxes per image."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for index in range(count):
        image = np.full((size, size, 3), 200, np.uint8) + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
        objects = []
        for number in range(1 + index % 2):
            name = ("red", "blue")[(index + number) % 2]
            side = int(rng.integers(24, 36))
            x = (
                int(rng.integers(0, size - side))
                if number == 0
                else (size - side if objects[0][1][0] < size / 2 else 0)
            )
            y = int(rng.integers(0, size - side))
            image[y : y + side, x : x + side] = COLOURS[name]
            objects.append((name, (x, y, x + side, y + side)))
        Image.fromarray(image).save(folder / f"img{index}.png")
        items = "".join(
            f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
            f"<ymax>{d}</ymax></bndbox></object>"
            for n, (a, b, c, d) in objects
        )
        (folder / f"img{index}.xml").write_text(f"<annotation><filename>img{index}.png</filename>{items}</annotation>")
        truth[f"img{index}.png"] = objects
    return truth


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A detector trained (overfitted) on 8 square images; the train set doubles as dev."""
    import keras

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("detect")
    truth = write_squares(root / "data")
    code = dlapps(
        [
            "detect",
            "train",
            str(root / "data"),
            "--dev",
            str(root / "data"),
            "--output",
            str(root / "model"),
            "--image-size",
            "96",
            "--head-epochs",
            "8",
            "--fine-tune-epochs",
            "40",
            "--learning-rate",
            "0.01",
            "0.003",
            "--batch-size",
            "8",
            "--no-augment",
            "--patience",
            "40",
            "--json",
        ]
    )
    assert code in (0, None)
    return root, truth


def test_a_tiny_detector_overfits_squares_and_finds_them(trained, capsys):
    root, truth = trained
    metrics = json.loads((root / "model" / "metrics.json").read_text())
    assert metrics["train_map50"] > 0.9, metrics
    code = dlapps(
        [
            "detect",
            "predict",
            str(root / "data" / "img1.png"),
            "--model",
            str(root / "model"),
            "--output",
            str(root / "predicted"),
            "--json",
            "--save-txt",
            "--score-threshold",
            "0.1",
        ]
    )
    assert code in (0, None)
    found = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # For each object, the surest box of its class is on it.
    for name, box in truth["img1.png"]:
        own = [d for d in found["detections"] if d["class"] == name]
        assert own, name
        best = max(own, key=lambda d: d["score"])
        assert box_iou([best["box"]], [box])[0, 0] > 0.5, (best, box)
    assert (root / "predicted" / "img1.jpg").is_file() and (root / "predicted" / "labels" / "img1.txt").is_file()
    # The record names the files written for it (a script finds the picture of a numbered run folder).
    assert (found["output"], found["label_file"]) == (str(root / "predicted" / "img1.jpg"),
                                                      str(root / "predicted" / "labels" / "img1.txt"))  # fmt: skip


def test_predict_runs_without_output_never_mix_their_pictures(trained, tmp_path, monkeypatch, capsys):
    """Two models' pictures of the same photo went to one runs/detect/predict/, the second over the first."""
    root, _ = trained
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "detect" / "predict3").mkdir(parents=True)  # an empty folder is free to use
    for _ in range(3):
        assert dlapps(["detect", "predict", str(root / "data" / "img1.png"), "--model", str(root / "model")]) == 0
    written = sorted(str(path.relative_to(tmp_path)) for path in (tmp_path / "runs").rglob("*.jpg"))
    assert written == [f"runs/detect/{name}/img1.jpg" for name in ("predict", "predict2", "predict3")]
    assert "wrote runs/detect/predict3/" in capsys.readouterr().out
    # A run whose every input fails, or that writes nothing (--no-images), leaves no empty folder behind.
    (tmp_path / "notes.txt").write_text("not a picture")
    assert dlapps(["detect", "predict", "notes.txt", "--model", str(root / "model")]) == 2
    assert dlapps(["detect", "predict", str(root / "data" / "img1.png"), "--model", str(root / "model"),
                   "--no-images"]) == 0  # fmt: skip
    assert sorted(path.name for path in (tmp_path / "runs" / "detect").iterdir()) == ["predict", "predict2", "predict3"]


def test_export_answers_as_predict(trained, capsys, tmp_path):
    root, _ = trained
    code = dlapps(["detect", "export", "--model", str(root / "model"), "--output", str(tmp_path / "sm"), "--json"])
    assert code in (0, None)
    capsys.readouterr()
    code = dlapps(
        [
            "detect",
            "evaluate",
            str(root / "data"),
            "--model",
            str(root / "model"),
            "--exported",
            str(tmp_path / "sm"),
            "--output",
            str(tmp_path / "eval"),
            "--json",
        ]
    )
    assert code in (0, None)
    result = json.loads(capsys.readouterr().out)
    assert result["map50"] > 0.9 and result["exported"]["same_counts"]
    assert result["exported"]["max_box_difference_px"] < 1e-3 and result["exported"]["max_score_difference"] < 1e-5
    assert (tmp_path / "eval" / "precision_recall.png").is_file()
    # Without --json the comparison is in the summary too (it was only in metrics.json).
    dlapps(["detect", "evaluate", str(root / "data"), "--model", str(root / "model"), "--exported",
            str(tmp_path / "sm"), "--output", str(tmp_path / "eval")])  # fmt: skip
    assert f"exported {tmp_path / 'sm'}: the same boxes as the Keras model on 8 images" in capsys.readouterr().out


def test_evaluate_names_training_images_copied_elsewhere(trained, tmp_path, capsys):
    """The shipped raccoon model, evaluated on the raccoon set (its training images among them, in a folder other
    than the one it was trained from), gave mAP 0.966 without a word."""
    import shutil

    root, _ = trained
    config = json.loads((root / "model" / "config.json").read_text())
    assert config["trained_images"] == [f"img{index}.png" for index in range(8)]
    shutil.copytree(root / "data", tmp_path / "copy")
    code = dlapps(["detect", "evaluate", str(tmp_path / "copy"), "--model", str(root / "model"), "--output",
                   str(tmp_path / "eval"), "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code in (0, None) and json.loads(captured.out)["training_names"] == 8
    assert f"8 images of {tmp_path / 'copy'} bear the names of this model's training (or dev) images" in captured.err


def test_a_wrong_exported_path_is_refused_before_the_evaluation(trained, tmp_path, capsys):
    """A missing --exported (or an .onnx file) failed with TensorFlow's OSError, exit 1, after the whole evaluation
    had written its pictures."""
    root, _ = trained
    (tmp_path / "detector.onnx").write_bytes(b"onnx")
    for given, said in ((tmp_path / "nowhere", "no such file or folder"), (tmp_path / "detector.onnx",
                                                                         "not a SavedModel folder")):  # fmt: skip
        code = dlapps(["detect", "evaluate", str(root / "data"), "--model", str(root / "model"), "--exported",
                       str(given), "--output", str(tmp_path / "eval")])  # fmt: skip
        assert code == 2 and f"--exported {given}: {said}" in capsys.readouterr().err
        assert not (tmp_path / "eval").exists()


def test_bad_data_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = dlapps(["detect", "train", str(tmp_path / "empty"), "--output", str(tmp_path / "out")])
    assert code == 2 and "no images in this folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_anchors_and_convert(tmp_path, capsys):
    write_squares(tmp_path / "data", count=6)
    assert dlapps(["detect", "anchors", str(tmp_path / "data"), "--k", "3", "--max-k", "4", "--json"]) in (0, None)
    result = json.loads(capsys.readouterr().out)
    assert (
        len(result["anchors"]) == 3
        and result["mean_iou_by_k"][-1]["mean_iou"] >= result["mean_iou_by_k"][0]["mean_iou"]
    )
    assert dlapps(["detect", "convert", str(tmp_path / "data"), "--to", "coco", "--output", str(tmp_path / "c")]) in (
        0,
        None,
    )
    assert (tmp_path / "c" / "annotations.json").is_file()


def test_video_is_annotated_frame_by_frame(trained, capsys, tmp_path):
    import cv2

    root, _ = trained
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 96))
    for index in range(3):
        writer.write(cv2.cvtColor(np.asarray(Image.open(root / "data" / f"img{index}.png")), cv2.COLOR_RGB2BGR))
    writer.release()
    code = dlapps(["detect", "predict", str(tmp_path / "clip.mp4"), "--model", str(root / "model"),
                   "--output", str(tmp_path / "out"), "--json", "--save-txt"])  # fmt: skip
    assert code in (0, None)
    frames = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [frame["frame"] for frame in frames] == [0, 1, 2]
    # --save-txt: one YOLO label file per frame, a line per detection.
    for frame in frames:
        lines = (tmp_path / "out" / "labels" / f"clip_{frame['frame']}.txt").read_text().splitlines()
        assert len(lines) == len(frame["detections"])
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def _tflite_outputs(path, canvas):
    import tensorflow as tf

    runner = tf.lite.Interpreter(str(path)).get_signature_runner()
    return runner(canvas=canvas)


def _onnx_outputs(path, canvas):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    out = dict(zip(names, session.run(None, {session.get_inputs()[0].name: canvas}), strict=True))
    return {key: out[next(n for n in names if key in n)] for key in ("boxes", "scores", "num_detections")}


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_onnx_and_tflite_exports_answer_as_keras_on_the_letterboxed_canvas(trained, capsys, tmp_path, fmt):
    """NMS included: in TFLite with builtin ops only (tf.image's NonMaxSuppressionV4), so any TFLite runtime runs it."""
    from dlapps.apps.object_detector.app import run_detector
    from dlapps.inference import load_model_dir
    from dlapps.tasks.yolo_detector import Detector, letterbox

    root, _ = trained
    path = tmp_path / f"detector.{fmt}"
    code = dlapps(["detect", "export", "--model", str(root / "model"), "--format", fmt, "--output", str(path)])
    assert code in (0, None) and path.is_file()
    capsys.readouterr()
    model, config = load_model_dir(root / "model", "detect")
    detector = Detector(model, config["anchors"], config["score_threshold"], config["iou_threshold"],
                        config["max_detections"])  # fmt: skip
    image = np.asarray(Image.open(root / "data" / "img1.png").convert("RGB"))
    boxes, scores, classes = run_detector(detector, image)
    canvas, scale, pad = letterbox(image[None], config["image_size"])
    out = (_onnx_outputs if fmt == "onnx" else _tflite_outputs)(path, canvas.numpy())
    count = int(out["num_detections"][0])
    onnx_boxes = (out["boxes"][0, :count] - np.tile(pad.numpy(), 2)) / float(scale)
    # As the export's info says: back from canvas to image pixels, clipped to the image (predict does the same).
    height, width = image.shape[:2]
    onnx_boxes = np.clip(onnx_boxes, 0, [width, height, width, height])
    assert count == len(boxes) > 0
    np.testing.assert_allclose(onnx_boxes, boxes, atol=1e-2)
    np.testing.assert_allclose(out["scores"][0, :count], scores, atol=1e-4)


def test_a_yolo_set_trains_on_its_data_yaml_splits(tmp_path, capsys):
    """Ultralytics' layout (images/train, images/val, labels/..., data.yaml): train: is trained on and val: is the dev
    set, never a random hold-out of both (val images were trained on)."""
    root = tmp_path / "set"
    for split, count, seed in (("train", 4, 0), ("val", 2, 1)):
        truth = write_squares(tmp_path / split, count=count, seed=seed)
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for name, objects in truth.items():
            (tmp_path / split / name).rename(root / "images" / split / name)
            lines = [f"{['red', 'blue'].index(n)} {(a + c) / 192} {(b + d) / 192} {(c - a) / 96} {(d - b) / 96}"
                     for n, (a, b, c, d) in objects]  # fmt: skip
            (root / "labels" / split / f"{name[:-4]}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [red, blue]\n")
    argv = ["detect", "train", str(root), "--output", str(tmp_path / "model"), "--image-size", "64", "--weights",
            "none", "--head-epochs", "1", "--fine-tune-epochs", "0", "--anchors", "3", "--objectness-loss",
            "varifocal", "--json"]  # fmt: skip
    assert dlapps(argv) in (0, None)
    out, _ = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["dev_images"] == 2
    assert json.loads((tmp_path / "model" / "config.json").read_text())["objectness_loss"] == "varifocal"
    # evaluate on the set's root measures its held-out split, never the training images
    assert dlapps(["detect", "evaluate", str(root), "--model", str(tmp_path / "model"), "--output",
                   str(tmp_path / "eval"), "--json"]) in (0, None)  # fmt: skip
    record = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert record["images"] == 2 and record["data"] == str(root / "images" / "val")
    # Resuming with another dev set is refused: its dev figures would not compare.
    (tmp_path / "model" / "model.keras").unlink()
    (tmp_path / "model" / "state.json").write_text('{"phase_done": 0}')
    code = dlapps([*argv[:-1], "--resume", "--dev", str(root / "images" / "train")])
    err = capsys.readouterr().err
    assert code == 2 and "--dev" in err and "differs from the interrupted run" in err, err
