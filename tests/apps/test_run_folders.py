"""The run-folder rules every training verb shares: --resume and --overwrite (cli.common.check_train_output)."""

import argparse
import importlib
import json

import pytest

from dlapps.cli import APPS
from dlapps.cli.common import build_parser, check_train_output, clear_run_folder, prepare_run_folder


def _args(output, resume=False, overwrite=False):
    return argparse.Namespace(output=str(output), resume=resume, overwrite=overwrite)


def test_overwrite_replaces_a_run_and_never_a_folder_of_other_files(tmp_path):
    run = tmp_path / "run"
    for phase in ("train", "head", "phase1"):
        (run / "logs" / phase / "validation").mkdir(parents=True)
        (run / "logs" / phase / "validation" / "events.out.tfevents.1.host").write_bytes(b"")
    (run / "logs" / "mine").mkdir()  # no event files: a user's
    (run / "logs2").mkdir()  # a user's folder of logs: not TensorBoard's of this run
    (run / "logs" / "README.txt").write_text("a user's notes on the logs")
    for name in ("model.keras", "config.json", "history_head.csv", "best_head.weights.h5", "my_notes.txt"):
        (run / name).write_text("a finished run")
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        check_train_output(_args(run))
    args = _args(run, overwrite=True)
    assert check_train_output(args) == (run, {"phase_done": 0})
    assert len(list(run.iterdir())) == 7  # nothing removed before the run's first write
    prepare_run_folder(args, run)
    # The user's own files stay, in logs/ too; TensorBoard's folders of the old run go.
    assert sorted(path.relative_to(run).as_posix() for path in run.rglob("*")) == [
        "logs", "logs/README.txt", "logs/mine", "logs2", "my_notes.txt"
    ]  # fmt: skip
    (tmp_path / "interrupted").mkdir()
    (tmp_path / "interrupted" / "state.json").write_text(json.dumps({"phase_done": 1}))
    with pytest.raises(FileExistsError, match="--resume to continue it, or --overwrite"):
        check_train_output(_args(tmp_path / "interrupted"))
    with pytest.raises(ValueError, match="pass one of them"):
        check_train_output(_args(tmp_path / "interrupted", resume=True, overwrite=True))
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="holds files but no dlapps run"):
        clear_run_folder(photos)
    assert (photos / "holiday.jpg").exists()
    clear_run_folder(tmp_path / "missing")  # nothing to do


def test_an_overwrite_that_fails_on_its_data_leaves_the_old_run_whole(tmp_path, capsys):
    """--overwrite removed the old model before the new run read its data: a typo in the data path lost it."""
    from dlapps.cli import main

    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.keras", "config.json", "metrics.json"):
        (run / name).write_text("a finished run")
    (tmp_path / "empty").mkdir()
    code = main(["detect", "train", str(tmp_path / "empty"), "--output", str(run), "--overwrite"])
    assert code == 2 and "no images in this folder" in capsys.readouterr().err
    assert sorted(path.name for path in run.iterdir()) == ["config.json", "metrics.json", "model.keras"]


@pytest.mark.parametrize("app", ["cat", "finetune", "detect", "faces", "style"])
def test_every_training_verb_takes_overwrite(app):
    module = importlib.import_module(APPS[app][0])
    parser = build_parser(f"dlapps {app}", module.DESCRIPTION, module.VERBS)
    train = parser._subparsers._group_actions[0].choices["train"]
    assert "--overwrite" in train._option_string_actions


@pytest.mark.parametrize(
    "app, verb, config",
    [
        ("cat", "train", "dlapps.apps.cat_classifier.config:CatConfig"),
        ("finetune", "train", "dlapps.apps.fine_tuner.config:FineTuneConfig"),
        ("detect", "train", "dlapps.apps.object_detector.config:DetectConfig"),
        ("faces", "train", "dlapps.apps.face_verification.config:FaceConfig"),
        ("style", "train", "dlapps.apps.style_transfer.config:StyleTrainConfig"),
        ("style", "predict", "dlapps.apps.style_transfer.config:OptimiseConfig"),
    ],
)
def test_each_verbs_defaults_come_from_its_apps_config_dataclass(app, verb, config):
    """One source of defaults: the command line's (and so the Python API's keyword options) are the dataclass's."""
    import dataclasses

    module_name, class_name = config.split(":")
    defaults = dataclasses.asdict(getattr(importlib.import_module(module_name), class_name)())
    module = importlib.import_module(APPS[app][0])
    verb_parser = build_parser(f"dlapps {app}", module.DESCRIPTION, module.VERBS)._subparsers._group_actions[0]
    actions = {action.dest: action for action in verb_parser.choices[verb]._actions}
    shared = [name for name in defaults if name in actions]
    assert len(shared) >= 5
    for name in shared:
        value, action = defaults[name], actions[name]
        if action.default is None:  # chosen at run time (e.g. the backbone's own weights): the config says which
            continue
        if isinstance(value, tuple | list) and action.nargs is None:  # cat's square image_size (64, 64): one number
            value = value[0]
        assert (list(value) if isinstance(value, tuple) else value) == action.default, name


def test_did_you_mean_looks_among_the_chosen_verbs_options_only(capsys):
    from dlapps.cli import main

    with pytest.raises(SystemExit):
        main(["detect", "predict", "x.jpg", "--score-treshold", "0.3"])
    err = capsys.readouterr().err
    assert err.startswith("dlapps detect predict: error") and "did you mean --score-threshold?" in err
    with pytest.raises(SystemExit):  # cat train has no --resume: no guess from cat predict's --runner
        main(["cat", "train", "x", "--output", "y", "--resume"])
    err = capsys.readouterr().err
    assert "did you mean" not in err and err.strip().endswith("(see dlapps cat train --help)")


def test_a_mistyped_verb_or_preset_gets_a_guess(capsys):
    from dlapps.cli import main

    with pytest.raises(SystemExit):
        main(["detect", "predcit", "x.jpg"])
    err = capsys.readouterr().err
    assert "invalid choice: 'predcit'" in err and "did you mean 'predict'?" in err
    assert main(["detect", "predict", "x.jpg", "--model", "raccon"]) == 2
    assert "(nor a preset name: fruit, raccoon); did you mean 'raccoon'?" in capsys.readouterr().err


def test_a_run_marked_by_its_checkpoints_folder_follows_the_same_rules(tmp_path):
    """The style trainer's interrupted runs are marked by checkpoints/, not state.json: the one rule serves both."""
    from dlapps.cli.run_folders import check_run_folder

    run = tmp_path / "style_run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="--resume to continue it, or --overwrite"):
        check_run_folder(_args(run), interrupted="checkpoints")
    assert check_run_folder(_args(run, resume=True), interrupted="checkpoints") == run
    with pytest.raises(ValueError, match="nothing to resume"):
        check_run_folder(_args(tmp_path / "new", resume=True), interrupted="checkpoints")
    assert check_run_folder(_args(run, overwrite=True), interrupted="checkpoints") == run
    prepare_run_folder(_args(run, overwrite=True), run)
    assert not (run / "checkpoints").exists()


def test_help_shows_a_list_default_as_it_is_typed(capsys):
    from dlapps.cli import main

    with pytest.raises(SystemExit):
        main(["detect", "train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 0.002 0.0005)" in out and "[0.002, 0.0005]" not in out


def test_a_runs_files_are_its_own_never_a_users_files_beside_them(tmp_path):
    """A finished run's summary said it 'wrote' every file of the folder, a user's photo among them."""
    from dlapps.cli.run_folders import run_files

    for name in ("model.keras", "config.json", "history.json", "history_head.csv", "holiday.jpg", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "logs" / "head").mkdir(parents=True)
    (tmp_path / "logs" / "head" / "events.out.tfevents.1.host").write_bytes(b"")
    assert run_files(tmp_path) == ["config.json", "history.json", "history_head.csv", "logs/head", "model.keras"]


def test_a_wrong_backbone_or_weights_file_is_refused_before_the_data_is_read(tmp_path, capsys):
    """A stranger's `--weights nope.h5` was refused only after the data was read and the plan printed; `--weights
    imagent` was told of dlib and hed, words of other apps; the detector's backbone error listed backbones it does
    not offer."""
    from dlapps.cli import main

    data = tmp_path / "empty"  # no images: reading it would fail with another message
    data.mkdir()
    assert main(["detect", "train", str(data), "--output", str(tmp_path / "run"), "--weights", "imagent"]) == 2
    err = capsys.readouterr().err
    assert "--weights imagent: no such weights file (did you mean 'imagenet'? give imagenet, none or a file)" in err
    assert main(["faces", "train", str(data), "--output", str(tmp_path / "run"), "--weights", "nope.h5"]) == 2
    assert "give dlib, imagenet, none or a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["detect", "train", str(data), "--output", str(tmp_path / "run"), "--backbone", "mobilenet_v3_small"])
    assert "invalid choice: 'mobilenet_v3_small'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_new_run_folder_is_the_first_name_free_or_empty(tmp_path):
    from dlapps.cli.run_folders import new_run_folder

    base = tmp_path / "predict"
    assert new_run_folder(base) == base
    base.mkdir()
    assert new_run_folder(base) == base  # empty: nothing to mix with
    (base / "a.jpg").write_text("x")
    (tmp_path / "predict2").write_text("a file, not a folder")
    (tmp_path / "predict3").mkdir()
    assert new_run_folder(base) == tmp_path / "predict3"
    (tmp_path / "predict3" / "b.jpg").write_text("x")
    assert new_run_folder(base) == tmp_path / "predict4"


def test_config_options_take_names_defaults_and_types_from_the_dataclass(capsys):
    import argparse
    from dataclasses import dataclass, field

    from dlapps.cli.options import add_config_options
    from dlapps.cli.types import fraction

    @dataclass
    class Config:
        batch_size: int = 4
        learning_rate: float = 1e-3
        filters: list = field(default_factory=lambda: [8, 16])
        dropout: float = 0.5
        mining: str = "semi_hard"
        augment: bool = True

    parser = argparse.ArgumentParser()
    helps = {"batch_size": "b", "learning_rate": "r", "filters": "f", "dropout": "d", "mining": "m"}
    add_config_options(parser, Config(), helps, {"dropout": fraction, "mining": ["semi_hard", "hard"]})
    assert vars(parser.parse_args([])) == {"batch_size": 4, "learning_rate": 1e-3, "filters": [8, 16], "dropout": 0.5,
                                           "mining": "semi_hard"}  # fmt: skip
    assert parser.parse_args(["--filters", "1", "2", "--dropout", "0"]).filters == [1, 2]
    for wrong in (["--batch-size", "0"], ["--learning-rate", "nan"], ["--dropout", "2"], ["--mining", "easy"],
                  ["--filters", "1"]):  # fmt: skip
        with pytest.raises(SystemExit):
            parser.parse_args(wrong)
    capsys.readouterr()
    with pytest.raises(TypeError, match="augment: a bool field is a flag"):
        add_config_options(argparse.ArgumentParser(), Config(), {"augment": "a"})
