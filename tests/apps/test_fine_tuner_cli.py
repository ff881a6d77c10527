"""The fine-tuner through its command line, on tiny folders with a small from-scratch backbone."""

import json
import shutil
import socket
import time

import pytest

import dlapps.apps.fine_tuner.app as fine_tuner_app
import dlapps.apps.fine_tuner.train as fine_tuner_train
from dlapps.cli import main as dlapps
from tests.helpers import EXAMPLES, run_cli, write_bad_files, write_lite0_weights, write_tiny_image_folder

FAST = ["--weights", "none", "--image-size", "32", "--head-epochs", "1", "--fine-tune-epochs", "1", "--batch-size", "8"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A stand-in for pretrained weights (random, saved to a file) so that runs take the two-phase path offline."""
    return ["--weights", str(write_lite0_weights(tmp_path_factory.mktemp("weights") / "lite0.weights.h5"))]


def run(capsys, *argv):
    return run_cli(capsys, "finetune", *argv)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # Class names with a space and non-ASCII letters, as users' folders have them.
    pictures = tmp_path_factory.mktemp("data") / "pictures"
    return write_tiny_image_folder(pictures, {"not alpaca": 8, "álpaca": 8, "chat noir": 8})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, folder, pretrained):
    """One small model trained once and shared by the tests that only read it (or add exports beside it)."""
    output = tmp_path_factory.mktemp("trained") / "model"
    assert dlapps(["finetune", "train", str(folder), "--output", str(output), *FAST, *pretrained, "--json"]) == 0
    return output


def test_train_writes_everything(trained):
    for name in (
        "model.keras",
        "config.json",
        "metrics.json",
        "history_phase1.csv",
        "history_phase2.csv",
        "training_curves.png",
    ):
        assert (trained / name).is_file(), name
    assert (trained / "logs" / "phase1").is_dir()
    assert not (trained / "state.json").exists()
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["classes"] == ["chat noir", "not alpaca", "álpaca"]
    assert metrics["train_examples"] + metrics["dev_examples"] + metrics["test_examples"] == 24
    assert metrics["unfrozen_from"]["index"] > 0


def test_existing_output_is_refused(trained, folder, capsys):
    code, _, err = run(capsys, "train", folder, "--output", trained, *FAST)
    assert code == 2 and "--overwrite" in err
    code, _, err = run(capsys, "train", folder, "--output", trained, "--resume")
    assert code == 2 and "finished run" in err and "nothing to resume" in err


def test_predict_top_k_and_bad_files(trained, tmp_path, capsys):
    bad = write_bad_files(tmp_path / "bad")
    code, out, err = run(
        capsys, "predict", EXAMPLES / "chelsea.png", bad, "--model-dir", trained, "--top-k", "2", "--json"
    )
    assert code == 2 and "truncated.jpg" in err
    lines = [json.loads(x) for x in out.splitlines()]
    (line,) = [x for x in lines if "error" not in x]
    assert (
        len(lines) == 5
        and len(line["top_k"]) == 2
        and line["top_k"][0]["probability"] >= line["top_k"][1]["probability"]
    )


def test_export_and_evaluate_exported_models(trained, folder, capsys, tmp_path):
    from PIL import Image

    assert run(capsys, "export", "--model-dir", trained)[0] == 0
    assert run(capsys, "export", "--model-dir", trained, "--format", "tflite")[0] == 0
    assert run(capsys, "export", "--model-dir", trained, "--format", "tflite_int8")[0] == 0
    assert run(capsys, "export", "--model-dir", trained, "--format", "onnx")[0] == 0
    info = json.loads((trained / "model.tflite.json").read_text())
    assert info["input"]["shape"] == [1, 32, 32, 3] and info["class_names"] == ["chat noir", "not alpaca", "álpaca"]
    import onnx

    metadata = {p.key: p.value for p in onnx.load(str(trained / "model.onnx")).metadata_props}
    assert json.loads(metadata["class_names"]) == info["class_names"]
    # A TIFF among the images: the SavedModel cannot decode it in its graph, so it is named and left out.
    with_tiff = tmp_path / "with_tiff"
    shutil.copytree(folder, with_tiff)
    Image.open(next((with_tiff / "chat noir").glob("*.png"))).save(with_tiff / "chat noir" / "scan.tiff")
    code, out, err = run(
        capsys, "evaluate", with_tiff, "--model-dir", trained, "--json", "--output", tmp_path / "report",
        "--exported", trained / "serving", trained / "model.tflite", trained / "model_int8.tflite",
        trained / "model.onnx",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert "scan.tiff" in err and result["exported"][str(trained / "serving")]["skipped"] == 1
    assert result["num_examples"] == 25 and set(result["per_class"]) == {"chat noir", "not alpaca", "álpaca"}
    assert result["exported"][str(trained / "serving")]["max_probability_difference"] < 1e-4
    assert result["exported"][str(trained / "model.tflite")]["max_probability_difference"] < 1e-4
    assert result["exported"][str(trained / "model.onnx")]["max_probability_difference"] < 1e-4
    # An untrained tiny model gives near-uniform probabilities, so int8 rounding may flip its argmax: check
    # closeness here; the agreement on a trained model is measured on alpaca (see the issue note).
    assert result["exported"][str(trained / "model_int8.tflite")]["max_probability_difference"] < 0.1
    assert (tmp_path / "report" / "confusion_matrix.png").is_file()
    assert (tmp_path / "report" / "worst_mistakes.png").is_file()
    assert json.loads((trained / "serving" / "assets.extra" / "class_names.json").read_text()) == info["class_names"]


def test_evaluate_checks_the_exports_before_evaluating_and_finds_the_dev_split(trained, folder, capsys, tmp_path):
    # An export of a model with other classes, and a missing export: refused before any image is read.
    if not (trained / "model.tflite").exists():
        assert run(capsys, "export", "--model-dir", trained, "--format", "tflite")[0] == 0
    other = tmp_path / "other.tflite"
    shutil.copy(trained / "model.tflite", other)
    info = json.loads((trained / "model.tflite.json").read_text())
    (tmp_path / "other.tflite.json").write_text(json.dumps({**info, "class_names": ["a", "b", "c"]}))
    argv = ["evaluate", folder, "--model-dir", trained, "--output", tmp_path / "report"]
    code, _, err = run(capsys, *argv, "--exported", other)
    assert code == 2 and "['a', 'b', 'c'] are not the model's" in err and not (tmp_path / "report").exists()
    code, _, err = run(capsys, *argv, "--exported", tmp_path / "missing.onnx")
    assert code == 2 and "missing.onnx" in err and not (tmp_path / "report").exists()
    # A folder of train/ and val/ only: evaluated on val/, said so.
    splits = tmp_path / "splits"
    shutil.copytree(folder, splits / "train")
    shutil.copytree(folder, splits / "val")
    code, out, err = run(capsys, "evaluate", splits, "--model-dir", trained, "--output", tmp_path / "r2", "--json")
    assert code == 0, err
    assert "no test/ folder: evaluating on val/" in err and json.loads(out)["data"] == str(splits / "val")


def test_from_scratch_is_one_phase_with_the_whole_network_learning(tmp_path, folder, capsys):
    code, out, err = run(capsys, "train", folder, "--output", tmp_path / "scratch", *FAST, "--json")
    assert code == 0, err
    assert json.loads(out)["unfrozen_from"] is None
    assert not (tmp_path / "scratch" / "history_phase2.csv").exists()


def test_members_train_one_after_another_resume_and_answer_as_their_mean(tmp_path, folder, capsys, monkeypatch):
    import keras
    import numpy as np

    output = tmp_path / "ensemble"
    argv = ["train", folder, "--output", output, *FAST, "--head-epochs", "2", "--members", "2", "--json"]
    real_make_datasets, calls = fine_tuner_app.make_datasets, []

    def interrupt_second_member(*args, **kwargs):  # member 2 builds its own datasets (its seed's augmentation)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_make_datasets(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(fine_tuner_train, "make_datasets", interrupt_second_member)
        code, _, err = run(capsys, *argv)
    assert code == 130 and "--resume" in err and (output / "member1" / "phase1.keras").exists()
    code, out, err = run(capsys, *argv, "--resume")
    assert code == 0, err
    result = json.loads(out)
    assert [(m["member"], m["seed"]) for m in result["members"]] == [(1, 42), (2, 43)]
    assert result["phases"]["member1_phase1"]["epochs"] == 2  # member 1 was not trained again on resume
    assert not (output / "member1").exists() and (output / "history_member2_phase1.csv").exists()
    model = keras.saving.load_model(output / "model.keras")
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    mean = (model.get_layer("member1")(images) + model.get_layer("member2")(images)) / 2
    np.testing.assert_allclose(model.predict(images, verbose=0), mean, atol=1e-6)
    code, out, err = run(capsys, "predict", next((folder / "chat noir").iterdir()), "--model-dir", output, "--json")
    assert code == 0, err
    code, _, err = run(capsys, "train", folder, "--output", tmp_path / "t", "--base", output, *FAST[4:])
    assert code == 2 and "seed ensemble" in err


def test_the_from_scratch_recipe_fills_only_what_the_command_line_leaves_unset(tmp_path, folder, capsys):
    from dlapps.apps.fine_tuner.config import SCRATCH_RECIPE, scratch_epochs

    argv = ["train", folder, "--output", tmp_path / "run", "--weights", "none", "--image-size", "32"]
    argv += ["--batch-size", "8", "--learning-rate", "0.002", "--patience", "1", "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["image_size"] == 32 and config["learning_rate"] == 0.002 and config["patience"] == 1
    assert config["backbone"] == "small_resnet" and config["augment_crop"] == SCRATCH_RECIPE["augment_crop"] > 0
    # 24 images split 70/15/15 leave 16 to train on: 2 steps an epoch, so the schedule's cap of 150 epochs.
    assert config["head_epochs"] == scratch_epochs(16, 8) == 150
    assert json.loads(out)["phases"]["phase1"]["epochs"] <= 150


def test_from_scratch_fits_its_own_training_set(tmp_path, capsys):
    # The course's first check: a network trained from random weights must fit its training set (here "cat" images
    # have a bright top half). --weights none once stayed at the majority rate: batch norm ran on moving statistics.
    pictures = write_tiny_image_folder(tmp_path / "pictures", {"cat": 12, "dog": 12}, size=32)
    argv = ["train", pictures, "--output", tmp_path / "run", "--weights", "none", "--image-size", "32", "--no-augment"]
    code, out, err = run(capsys, *argv, "--batch-size", "8", "--head-epochs", "40", "--json")
    assert code == 0, err
    history = (tmp_path / "run" / "history_phase1.csv").read_text().splitlines()
    assert float(history[-1].split(",")[1]) == 1.0  # the last epoch's training accuracy


def test_scratch_epochs_is_a_step_budget_within_bounds():
    from dlapps.apps.fine_tuner.config import scratch_epochs

    assert scratch_epochs(229, 32) == 150  # alpaca: 8 steps an epoch
    assert scratch_epochs(1258, 32) == 30  # 40 steps an epoch: 1,200 steps
    assert scratch_epochs(100_000, 32) == 20  # never fewer than 20 epochs


def test_resume_after_interruption(tmp_path, folder, capsys, monkeypatch, pretrained):
    output = tmp_path / "model"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(fine_tuner_app, "unfreeze_top", interrupt)
        assert run(capsys, "train", folder, "--output", output, *FAST, *pretrained)[0] == 130
    assert json.loads((output / "state.json").read_text()) == {"phase_done": 1}
    code, _, err = run(capsys, "train", folder, "--output", output, *FAST)
    assert code == 2 and "--resume" in err
    code, _, err = run(capsys, "train", folder, "--output", output, "--resume")
    assert code == 0, err
    assert (output / "model.keras").is_file() and not (output / "state.json").exists()


def test_transfer_from_a_trained_classifier(tmp_path, trained, capsys):
    other = write_tiny_image_folder(tmp_path / "two", {"a": 6, "b": 6})
    code, out, err = run(capsys, "train", other, "--output", tmp_path / "t", "--base", trained, *FAST[4:], "--json")
    assert code == 0, err
    assert json.loads(out)["classes"] == ["a", "b"]


def test_bad_folders(tmp_path, capsys):
    empty_class = write_tiny_image_folder(tmp_path / "x", {"a": 4})
    (empty_class / "b").mkdir()
    code, _, err = run(capsys, "train", empty_class, "--output", tmp_path / "o", *FAST)
    assert code == 2 and "no images" in err and "['b']" in err
    one_class = write_tiny_image_folder(tmp_path / "y", {"a": 4})
    code, _, err = run(capsys, "train", one_class, "--output", tmp_path / "o2", *FAST)
    assert code == 2 and "at least 2 class" in err


def test_mixed_in_junk_and_a_class_too_small_to_split(tmp_path, capsys):
    folder = write_tiny_image_folder(tmp_path / "z", {"a": 6, "b": 6, "c": 1})
    (folder / "a" / "readme.txt").write_text("not a picture")
    write_bad_files(folder / "b" / "deeper")
    code, out, err = run(capsys, "train", folder, "--output", tmp_path / "o", *FAST, "--json")
    # Refused before training, naming the class and its count; nothing is written.
    assert code == 2 and "c (1)" in err and not (tmp_path / "o").exists()
    assert "readme.txt" in err and "truncated.jpg" in err
    write_tiny_image_folder(folder, {"c": 3})
    code, out, err = run(capsys, "train", folder, "--output", tmp_path / "o", *FAST, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["output"] == str(tmp_path / "o") and "model.keras" in result["files"]
    assert [sum(column) for column in zip(*result["counts"].values())] == [6, 6, 3]


def test_a_class_whose_images_are_all_unreadable_is_refused(tmp_path, capsys):
    folder = write_tiny_image_folder(tmp_path / "z", {"a": 4, "b": 4})
    (folder / "c").mkdir()
    write_bad_files(folder / "c")
    code, _, err = run(capsys, "train", folder, "--output", tmp_path / "o", *FAST)
    assert code == 2 and "no readable image in class folders ['c']" in err


def test_hidden_folders_and_leftovers_are_never_classes_or_samples(tmp_path, capsys):
    folder = write_tiny_image_folder(tmp_path / "z", {"a": 4, "b": 4})
    (folder / "a" / ".ipynb_checkpoints").mkdir()
    (folder / "b" / "b_0.png").rename(folder / "a" / ".ipynb_checkpoints" / "b_0-checkpoint.png")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / "a" / "._a_0.png").write_bytes(b"\x00\x05\x16\x07")
    (folder / "a" / ".DS_Store").write_bytes(b"\x00")
    (folder / "Thumbs.db").write_bytes(b"\x00")
    code, out, err = run(capsys, "train", folder, "--output", tmp_path / "o", *FAST, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["classes"] == ["a", "b"] and "checkpoint" not in err and "._a_0" not in err
    assert [sum(column) for column in zip(*result["counts"].values())] == [4, 3]


def test_layouts_that_would_train_the_wrong_classes_are_refused(tmp_path, capsys):
    nested = write_tiny_image_folder(tmp_path / "nested" / "pictures", {"a": 3, "b": 3})
    code, _, err = run(capsys, "train", tmp_path / "nested", "--output", tmp_path / "o", *FAST)
    assert code == 2 and f"pass {nested}" in err
    # Split folders in other cases are found; a "class/split" layout is refused.
    write_tiny_image_folder(tmp_path / "cased" / "Train", {"a": 3, "b": 3})
    write_tiny_image_folder(tmp_path / "cased" / "Validation", {"a": 2, "b": 2})
    code, out, err = run(capsys, "train", tmp_path / "cased", "--output", tmp_path / "o2", *FAST, "--json")
    assert code == 0, err and json.loads(out)["dev_examples"] == 4
    write_tiny_image_folder(tmp_path / "inverted" / "a" / "train", {"x": 3})
    write_tiny_image_folder(tmp_path / "inverted" / "b" / "train", {"x": 3})
    code, _, err = run(capsys, "train", tmp_path / "inverted", "--output", tmp_path / "o3", *FAST)
    assert code == 2 and "split folders" in err
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "a").symlink_to(tmp_path / "cased" / "Train" / "a", target_is_directory=True)
    (linked / "b").symlink_to(tmp_path / "cased" / "Train" / "b", target_is_directory=True)
    code, out, err = run(capsys, "train", linked, "--output", tmp_path / "o4", *FAST, "--json")
    assert code == 0, err and json.loads(out)["classes"] == ["a", "b"]


@pytest.mark.parametrize("value", ["nan", "0", "-1", "inf"])
def test_bad_learning_rates_are_refused(tmp_path, folder, capsys, value):
    code, _, err = run(capsys, "train", folder, "--output", tmp_path / "o", *FAST, "--learning-rate", value)
    assert code == 2 and "--learning-rate" in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "option, value", [("--ema-momentum", "1"), ("--ema-momentum", "-0.1"), ("--weight-decay", "nan")]
)
def test_bad_weight_averages_and_decays_are_refused(tmp_path, folder, capsys, option, value):
    code, _, err = run(capsys, "train", folder, "--output", tmp_path / "o", *FAST, option, value)
    assert code == 2 and option in err and not (tmp_path / "o").exists()


def test_weight_decay_and_a_weight_average_reach_the_optimizer():
    import keras

    from dlapps.apps.fine_tuner.config import FineTuneConfig

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    fine_tuner_app._compile(model, 1e-3, FineTuneConfig(weight_decay=0.05, ema_momentum=0.9))
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.AdamW) and optimizer.weight_decay == 0.05
    assert optimizer.use_ema and optimizer.ema_momentum == 0.9
    fine_tuner_app._compile(model, 1e-3, FineTuneConfig())
    assert type(model.optimizer) is keras.optimizers.Adam and not model.optimizer.use_ema


def test_a_failed_start_leaves_nothing_that_blocks_the_corrected_command(tmp_path, folder, capsys):
    code, _, _ = run(capsys, "train", tmp_path / "no such folder", "--output", tmp_path / "o", *FAST)
    assert code == 2
    code, _, err = run(capsys, "train", folder, "--output", tmp_path / "o", *FAST)
    assert code == 0, err


def test_a_fine_tune_layer_that_does_not_exist_is_refused_before_anything_is_written(
    tmp_path, folder, pretrained, capsys
):
    argv = ["train", folder, "--output", tmp_path / "o", *FAST, *pretrained]
    code, _, err = run(capsys, *argv, "--fine-tune-from", "no_such_layer")
    assert code == 2 and "no layer named 'no_such_layer'" in err and not (tmp_path / "o" / "config.json").exists()
    code, _, err = run(capsys, *argv, "--fine-tune-from", "block6a_expand_cnv")  # a typo: the closest names
    assert code == 2 and "closest: block6a_expand_conv" in err
    code, _, err = run(capsys, *argv, "--fine-tune-from", "9999")  # an index past the end, never wrapped round
    assert code == 2 and "from 0 to" in err and not (tmp_path / "o" / "config.json").exists()
    code, _, err = run(capsys, *argv, "--fine-tune-from", "block6a_expand_conv")
    assert code == 0, err


def test_offline_imagenet_weights_fail_fast_with_the_alternatives(tmp_path, folder, capsys, monkeypatch):
    import keras.src.backend.config as keras_config

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "empty_keras_home"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", offline)
    start = time.perf_counter()
    code, _, err = run(
        capsys, "train", folder, "--output", tmp_path / "o", "--backbone", "mobilenet_v2", "--image-size", "32"
    )
    assert code == 2
    # Fails at once rather than retrying the download for minutes (a loose bound: a loaded CI machine took 30 s+).
    assert time.perf_counter() - start < 120
    assert "could not download" in err and "--weights none" in err and "--weights PATH" in err and "--base" in err
    # One error line (Keras may warn first that 32x32 is not a size its ImageNet weights were trained at).
    errors = [line for line in err.strip().splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("dlapps finetune: error: could not download")


def test_tune_random_search_prints_best_trials(tmp_path, folder, capsys):
    code, out, err = run(capsys, "tune", folder, "--output", tmp_path / "tuning", *FAST, "--trials", "2", "--json")
    assert code == 0, err
    trials = json.loads(out)["best_trials"]
    assert len(trials) == 2 and trials[0]["dev_accuracy"] >= trials[1]["dev_accuracy"]
    assert 1e-4 <= trials[0]["learning_rate"] <= 1e-2 and set(trials[0]) >= {"dropout", "fine_tune_fraction"}
    assert sorted(t["trial"] for t in trials) == [1, 2]  # As keras-tuner's "Running Trial #1" numbers them.
    code, _, err = run(capsys, "tune", folder, "--output", tmp_path / "tuning", *FAST, "--trials", "2")
    assert code == 2 and "earlier search" in err and "--resume" in err


def test_killed_mid_training_resumes_from_the_last_epoch(tmp_path, folder, pretrained):
    """SIGKILL during phase 1, then --resume: training continues from its backup and finishes cleanly."""
    import signal
    import subprocess
    import sys

    output = tmp_path / "killed"
    command = [sys.executable, "-m", "dlapps", "finetune", "train", str(folder), "--output", str(output), *FAST]
    command += [*pretrained, "--head-epochs", "30", "--patience", "30", "--batch-size", "2", "--json"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = output / "history_phase1.csv"
    deadline = time.time() + 300
    while time.time() < deadline and (not history.exists() or len(history.read_text().splitlines()) < 3):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(history.read_text().splitlines()) - 1
    assert 2 <= done_before < 30 and (output / "backup_phase1").is_dir()
    config = json.loads((output / "config.json").read_text())
    config["head_epochs"] = done_before + 2  # Shorten the rest of the run; the backup holds the finished epochs.
    (output / "config.json").write_text(json.dumps(config))
    result = subprocess.run([sys.executable, "-m", "dlapps", "finetune", "train", str(folder), "--output", str(output),
                             "--resume", "--json"], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    epochs = [int(line.split(",")[0]) for line in history.read_text().splitlines()[1:] if line[0].isdigit()]
    assert epochs[-1] == done_before + 1  # Continued where it stopped (0-based epochs), not from epoch 0.
    assert (output / "model.keras").is_file() and not (output / "state.json").exists()


class _InterruptAt(__import__("keras").callbacks.Callback):
    """Ctrl-C at the end of one epoch (after its backup is written), once armed by its phase's `prepare`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.armed = epoch, False

    def on_epoch_end(self, epoch, logs=None):
        if self.armed and epoch == self.epoch:
            raise KeyboardInterrupt


def _interrupting(monkeypatch, phase, epoch):
    original = fine_tuner_train.fit_phases
    interrupt = _InterruptAt(epoch)

    def fit_phases(model, phases, *args, **kwargs):
        prepare = phases[phase]["prepare"]

        def arm(trained):
            interrupt.armed = True
            return prepare(trained)  # phase 1's head on cached features: the model and data it fits

        phases[phase]["prepare"] = arm
        return original(model, phases, *args, extra_callbacks=[interrupt], **kwargs)

    monkeypatch.setattr(fine_tuner_train, "fit_phases", fit_phases)


@pytest.mark.parametrize("phase", [0, 1])
def test_interrupted_in_either_phase_resumes_to_the_same_epochs(
    tmp_path, folder, capsys, monkeypatch, pretrained, phase
):
    """Ctrl-C in phase 1 or 2, then --resume: both phases run in full, as in an uninterrupted run."""
    options = [*FAST, *pretrained, "--head-epochs", "3", "--fine-tune-epochs", "3", "--patience", "10", "--json"]
    code, out, err = run(capsys, "train", folder, "--output", tmp_path / "whole", *options)
    assert code == 0, err
    whole = json.loads(out)["phases"]
    with monkeypatch.context() as patch:
        _interrupting(patch, phase, epoch=1)
        code, _, err = run(capsys, "train", folder, "--output", tmp_path / "cut", *options)
    assert code == 130 and "--resume" in err
    code, out, err = run(capsys, "train", folder, "--output", tmp_path / "cut", "--resume", "--json")
    assert code == 0, err
    resumed = json.loads(out)["phases"]
    assert [resumed[p]["epochs"] for p in ("phase1", "phase2")] == [whole[p]["epochs"] for p in ("phase1", "phase2")]
    assert [resumed[p]["epochs"] for p in ("phase1", "phase2")] == [3, 3]


def test_resume_in_phase_2_keeps_the_best_epoch_from_before_the_interruption(tmp_path, folder, capsys, monkeypatch,
                                                                            pretrained):  # fmt: skip
    import keras

    output = tmp_path / "cut"
    options = [*FAST, *pretrained, "--head-epochs", "2", "--fine-tune-epochs", "4", "--patience", "10"]
    with monkeypatch.context() as patch:
        _interrupting(patch, 1, epoch=1)
        assert run(capsys, "train", folder, "--output", output, *options)[0] == 130
    before = [row["val_loss"] for row in fine_tuner_app_history(output / "history_phase2.csv")]
    # Make every epoch after the interruption worse: a learning rate far too large for phase 2.
    config = json.loads((output / "config.json").read_text())
    config["learning_rate"] = 30.0
    (output / "config.json").write_text(json.dumps(config))
    code, out, err = run(capsys, "train", folder, "--output", output, "--resume", "--json")
    assert code in (0, 1), err
    history = [row["val_loss"] for row in fine_tuner_app_history(output / "history_phase2.csv")]
    assert len(before) == 2 and history[:2] == before
    if code == 0:
        # The final model is the best epoch of phase 2, from before the interruption when that was the best.
        # ... or phase 1's best, when phase 2 never beat it.
        phase1 = [row["val_loss"] for row in fine_tuner_app_history(output / "history_phase1.csv")]
        best_loss = min(min(history), min(phase1))
        model = keras.saving.load_model(output / "model.keras")
        splits, _ = fine_tuner_app.read_splits(folder, fine_tuner_app._load_run_config(output))
        datasets = fine_tuner_app.make_datasets(splits, fine_tuner_app._load_run_config(output), [])
        fine_tuner_app._compile(model, 1e-3, fine_tuner_app._load_run_config(output))
        assert model.evaluate(datasets["dev"], verbose=0)[0] == pytest.approx(best_loss, rel=1e-4)
    else:
        assert "NaN" in err and (output / "best_phase2.weights.h5").is_file()


def fine_tuner_app_history(path):
    from dlapps.training import read_history

    return read_history(path)


def test_resume_on_another_folder_and_training_into_saved_models_are_refused(
    tmp_path, folder, capsys, monkeypatch, pretrained
):
    from dlapps.presets import SHIPPED_DIR

    output = tmp_path / "cut"
    options = [*FAST, *pretrained, "--head-epochs", "2"]
    with monkeypatch.context() as patch:
        _interrupting(patch, 0, epoch=0)
        code, _, err = run(capsys, "train", folder, "--output", output, *options)
    assert code == 130 and "--resume" in err
    other = write_tiny_image_folder(tmp_path / "other", {"cat": 3, "non-cat": 3})
    code, _, err = run(capsys, "train", other, "--output", output, "--resume")
    assert code == 2 and f"is a run on {folder}" in err
    code, _, err = run(capsys, "train", folder, "--output", SHIPPED_DIR / "mine", *FAST)
    assert code == 2 and "never written by a command" in err
    assert not (SHIPPED_DIR / "mine").exists()


def test_usage_errors_are_one_line(tmp_path, folder, capsys):
    code, _, err = run(capsys, "train", folder, "--output", tmp_path / "o", "--learning-rate", "nan")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--learning-rate" in err


def test_mistake_captions_name_the_file_below_the_evaluated_folder(tmp_path):
    from dlapps.apps.fine_tuner.evaluate import _relative

    (tmp_path / "photos" / "cat" / "album").mkdir(parents=True)
    (tmp_path / "linked").symlink_to(tmp_path / "photos" / "cat", target_is_directory=True)
    assert _relative(tmp_path / "photos" / "cat" / "album" / "1.jpg", tmp_path / "photos") == "cat/album/1.jpg"
    # A symlinked class folder keeps its own name; a file outside the folder is named alone.
    assert _relative(tmp_path / "linked" / "2.jpg", tmp_path) == "linked/2.jpg"
    assert _relative(tmp_path / "elsewhere" / "3.jpg", tmp_path / "photos") == "3.jpg"
