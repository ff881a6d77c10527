"""The cat classifier end to end through its command line, on tiny data: train, evaluate, predict, export."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dlapps.cli import main as dlapps
from tests.helpers import EXAMPLES, write_bad_files, write_tiny_image_folder


def run(capsys, *argv):
    code = dlapps(list(map(str, argv)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def trained(tmp_path, tiny_h5, capsys):
    output = tmp_path / "model"
    code, out, err = run(
        capsys, "cat", "train", "--data", tiny_h5, "--model", "cnn", "--filters", "4", "8",
        "--epochs", "2", "--image-size", "16", "--output", output, "--json",
    )  # fmt: skip
    assert code == 0, err
    return output


def test_train_writes_model_config_and_metrics(trained):
    for name in ("model.keras", "config.json", "metrics.json", "history.csv", "training_curves.png"):
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["train_examples"] + metrics["train_dev_examples"] == 24
    config = json.loads((trained / "config.json").read_text())
    assert config["model"] == "cnn" and config["app"] == "cat"


def test_train_refuses_to_overwrite(trained, tiny_h5, capsys):
    code, _, err = run(capsys, "cat", "train", tiny_h5, "--output", trained, "--epochs", "1")
    assert code == 2 and "--overwrite" in err


def test_evaluate_json_and_report(trained, tiny_h5, capsys, tmp_path):
    report = tmp_path / "report"
    code, out, _ = run(
        capsys, "cat", "evaluate", "--data", tiny_h5, "--model-dir", trained, "--json", "--output", report
    )
    assert code == 0
    result = json.loads(out)
    assert result["num_examples"] == 10 and 0 <= result["accuracy"] <= 1 and 0 <= result["balanced_accuracy"] <= 1
    assert set(result["bias_variance"]) >= {"train_error", "train_dev_error", "test_error", "diagnosis"}
    assert (report / "errors.png").is_file() and (report / "confusion_matrix.png").is_file()
    assert result["output"] == str(report) and result["files"] == ["confusion_matrix.png", "errors.png"]


def test_train_with_a_real_dev_set_gives_the_four_error_readout(tmp_path, tiny_h5, tiny_folder, capsys):
    output = tmp_path / "model"
    code, out, err = run(
        capsys, "cat", "train", "--data", tiny_h5, "--dev", tiny_folder, "--model", "logreg", "--epochs", "1",
        "--image-size", "16", "--output", output, "--json",
    )  # fmt: skip
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["dev_examples"] == 12 and 0 <= metrics["dev_balanced_accuracy"] <= 1
    code, out, err = run(
        capsys, "cat", "evaluate", "--data", tiny_h5, "--model", output, "--output", tmp_path / "r", "--json"
    )
    readout = json.loads(out)["bias_variance"]
    assert None not in [readout[k] for k in ("train_error", "train_dev_error", "dev_error", "test_error")]
    assert "data_mismatch" in readout


def test_shipped_model_is_never_written_to(tmp_path, capsys, monkeypatch):
    from dlapps.presets import SHIPPED_DIR

    shipped = SHIPPED_DIR / "cat_classifier"
    before = sorted(p.name for p in shipped.iterdir())
    monkeypatch.chdir(tmp_path)
    folder = write_tiny_image_folder(tmp_path / "eval", {"cat": 2, "non-cat": 2})
    assert run(capsys, "cat", "evaluate", "--data", folder)[0] == 0
    assert run(capsys, "cat", "export", "--format", "tflite")[0] == 0
    assert sorted(p.name for p in shipped.iterdir()) == before
    assert (tmp_path / "runs" / "cat" / "evaluate" / "errors.png").is_file()
    assert (tmp_path / "runs" / "cat" / "model.tflite").is_file()


def test_zero_shot_imagenet_needs_no_training(capsys, keras_home):
    code, out, err = run(capsys, "cat", "predict", EXAMPLES / "chelsea.png", "--model", "imagenet", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["label"] == "cat" and "cat" in result["imagenet_top"]["label"].lower()


def test_another_apps_model_folder_is_refused(tmp_path, capsys):
    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "model.keras").write_bytes(b"")
    (tmp_path / "tuned" / "config.json").write_text(json.dumps({"app": "finetune", "backbone": "efficientnet_lite0"}))
    code, _, err = run(capsys, "cat", "predict", EXAMPLES / "chelsea.png", "--model-dir", tmp_path / "tuned")
    assert code == 2 and "made by dlapps finetune" in err
    shipped = EXAMPLES.parent / "saved_models" / "cat_classifier"
    code, _, err = run(capsys, "finetune", "predict", EXAMPLES / "chelsea.png", "--model-dir", shipped)
    assert code == 2 and "made by dlapps cat" in err
    code, _, err = run(capsys, "cat", "predict", EXAMPLES / "chelsea.png", "--model-dir", tmp_path / "nowhere")
    assert code == 2 and "no such model folder" in err
    (tmp_path / "weights.h5").write_bytes(b"")
    code, _, err = run(capsys, "finetune", "predict", EXAMPLES / "chelsea.png", "--model-dir", tmp_path / "weights.h5")
    assert code == 2 and "expected a model folder" in err


def test_predict_skips_bad_files_and_reports_them(trained, tmp_path, capsys):
    bad = write_bad_files(tmp_path / "bad")
    code, out, err = run(capsys, "cat", "predict", EXAMPLES / "chelsea.png", bad, "--model-dir", trained, "--json")
    assert code == 2
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines if "error" not in line] == [str(EXAMPLES / "chelsea.png")]
    for name in ("empty.jpg", "truncated.jpg", "notes.jpg", "huge.png"):
        assert name in err
        # Every input gets its record, a failed one with the error that names it.
        assert any(line["path"].endswith(name) and name in line["error"] for line in lines)


def test_predict_matches_both_exported_endpoints(trained, capsys):
    files = sorted(EXAMPLES.glob("*.png")) + sorted(EXAMPLES.glob("*.jpg"))
    code, out, _ = run(capsys, "cat", "predict", *files, "--model-dir", trained, "--json")
    assert code == 0
    predicted = {line["path"]: line["probability"] for line in map(json.loads, out.splitlines())}
    code, _, _ = run(capsys, "cat", "export", "--model-dir", trained)
    assert code == 0
    served = tf.saved_model.load(str(trained / "serving"))
    for path in files:
        from_bytes = served.serve_bytes(tf.constant([path.read_bytes()]))["probabilities"].numpy()[0, 1]
        assert from_bytes == pytest.approx(predicted[str(path)], abs=1e-4)
    from PIL import Image

    pixels = np.asarray(Image.open(EXAMPLES / "chelsea.png").convert("RGB"))
    from_pixels = served.serve(tf.constant(pixels[None]))["probabilities"].numpy()[0, 1]
    assert from_pixels == pytest.approx(predicted[str(EXAMPLES / "chelsea.png")], abs=1e-4)


def test_tflite_export(trained, capsys):
    code, out, _ = run(capsys, "cat", "export", "--model-dir", trained, "--format", "tflite", "--json")
    assert code == 0 and json.loads(out)["bytes"] > 1000


def test_data_is_given_once_positional_or_by_its_first_spelling(capsys):
    cases = ((["/a", "--data", "/b"], "the data is given twice (/a and --data /b)"), ([], "required: data"))
    for argv, message in cases:
        with pytest.raises(SystemExit) as exited:
            run(capsys, "cat", "train", *argv, "--output", "x")
        assert exited.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict", "/no/such/file.jpg"], "no such file"),
        (["train", "--data", "/no/such/folder", "--output", "x"], "no such file"),
        (["train", "/no/such/folder", "--output", "x"], "no such file"),
    ],
)
def test_missing_paths_exit_2(tmp_path, capsys, argv, message, trained):
    if argv[0] == "predict":
        argv = [*argv, "--model-dir", str(trained)]
    else:
        argv[-1] = str(tmp_path / "out")
    code, _, err = run(capsys, "cat", *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_empty_folder_and_one_class_folder(tmp_path, capsys, trained):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "cat", "predict", tmp_path / "empty", "--model-dir", trained)
    assert code == 2 and "no image files" in err
    only_cats = write_tiny_image_folder(tmp_path / "cats", {"cat": 4})
    code, _, err = run(capsys, "cat", "train", "--data", only_cats, "--output", tmp_path / "o", "--epochs", "1")
    assert code == 2 and "non-cat" in err


def test_h5_without_expected_keys_exit_2(tmp_path, capsys):
    import h5py

    with h5py.File(tmp_path / "train_wrong.h5", "w") as file:
        file["x"] = np.zeros((2, 4, 4, 3))
    code, _, err = run(capsys, "cat", "train", "--data", tmp_path / "train_wrong.h5", "--output", tmp_path / "o")
    assert code == 2 and "train_wrong.h5" in err and "_set_x" in err


def test_train_on_image_folder(tmp_path, tiny_folder, capsys):
    code, out, err = run(
        capsys, "cat", "train", "--data", tiny_folder, "--model", "logreg", "--epochs", "1",
        "--image-size", "16", "--output", tmp_path / "m", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["train_examples"] + json.loads(out)["train_dev_examples"] == 12


def test_every_option_has_one_line_of_help_and_version(capsys):
    from dlapps.cli.cat import DESCRIPTION as CAT
    from dlapps.cli.cat import VERBS as CAT_VERBS
    from dlapps.cli.common import build_parser
    from dlapps.cli.finetune import DESCRIPTION as TUNE
    from dlapps.cli.finetune import VERBS as TUNE_VERBS

    for description, verbs in ((CAT, CAT_VERBS), (TUNE, TUNE_VERBS)):
        parser = build_parser("dlapps", description, verbs)
        for sub in parser._subparsers._group_actions[0].choices.values():
            for action in sub._actions:
                assert action.help, (sub.prog, action.dest)
                help_text = sub.formatter_class("x")._get_help_string(action)
                assert help_text.replace("%(default)s", "").count("default") <= 1, (sub.prog, help_text)
    assert dlapps(["--version"]) == 0 and capsys.readouterr().out.startswith("dlapps")


def test_help_is_fast_because_it_does_not_import_tensorflow():
    code = (
        "import sys, dlapps.cli, dlapps.cli.cat, dlapps.cli.finetune;"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    for app in ("cat", "finetune"):
        result = subprocess.run([sys.executable, "-m", "dlapps", app, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "train" in result.stdout


def test_evaluate_image_folder_reports_bad_files_and_keeps_the_rest(trained, tmp_path, capsys):
    folder = write_tiny_image_folder(tmp_path / "eval", {"cat": 3, "non-cat": 3})
    write_bad_files(folder / "cat" / "bad")
    code, out, err = run(
        capsys, "cat", "evaluate", "--data", folder, "--model-dir", trained, "--json", "--output", tmp_path / "r"
    )
    assert code == 2 and "truncated.jpg" in err
    result = json.loads(out)
    assert result["num_examples"] == 6 and len(result["skipped"]) == 4
