"""Run folders: where verbs write (never into saved_models/), and the --resume / --overwrite rules of training."""

import json
from pathlib import Path

from dlapps.presets import is_shipped


def default_model_dir(app_folder):
    """The shipped model of an app: package data in dlapps/saved_models/ (saved_models/ in a checkout)."""
    from dlapps.presets import SHIPPED_DIR

    return SHIPPED_DIR / app_folder


def check_output_folder(output):
    """Refuse to write a run into saved_models/ (the shipped models, described by their model cards).

    Raises:
        ValueError: the folder is inside saved_models/.
    """
    if is_shipped(output):
        raise ValueError(
            f"{output}: saved_models/ holds the shipped models and is never written by a command; "
            "train into another folder (e.g. runs/NAME), then copy it there by hand with its model card"
        )
    return Path(output)


# What marks a folder as a run of ours, and what a training run writes, with what the verbs write beside its model by
# default (exports, evaluations: stale once the model is replaced). `--overwrite` removes these and nothing else: a
# user's own notes or photos in the folder stay.
RUN_MARKS = ("config.json", "state.json", "model.keras", "checkpoints", "metrics.json")
RUN_FILES = (
    *RUN_MARKS, "*.keras", "*.weights.h5", ".best_*", "best_*.json", "history*.csv", "history.json", "backup*",
    "member[0-9]*", "training_curves.png", "precision_recall.png", "roc.png", "worst_images.png", "worst_pairs.png",
    "oracle.json", "best_trials.json", "trial_*", "style.*", "dev_contact_sheet.jpg",
    "serving", "*.tflite", "*.tflite.json", "*.onnx", "*.onnx.json", "export", "evaluate",
)  # fmt: skip
# TensorBoard's event files, in logs/ (a style run's) or in one folder of logs/ per phase or member: those folders go
# with the run, never all of logs/.
EVENTS = "events.out.tfevents.*"


def add_run_arguments(parser):
    """`--resume` and `--overwrite`, alike in every training verb."""
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --output")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace the run in --output (a finished or interrupted one): its model, checkpoints, logs and metrics "
        "are removed; other files there stay",
    )  # fmt: skip


def check_replaceable(output):
    """`--overwrite`'s check, before anything is removed: True when `output` holds a run to replace, False when it is
    missing or empty.

    Raises:
        FileExistsError: the folder holds files but no run of ours (no config.json, state.json, model.keras...).
    """
    output = Path(output)
    if not output.is_dir() or not any(output.iterdir()):
        return False
    if not any((output / mark).exists() for mark in RUN_MARKS):
        raise FileExistsError(
            f"{output} holds files but no dlapps run (no config.json, state.json or model.keras): --overwrite only "
            "replaces a run; pick another --output"
        )
    return True


def prepare_run_folder(args, output):
    """A training run's first write: `--overwrite` removes the previous run's files (`clear_run_folder`) only now,
    after the options and the data were checked, so a run that fails on its data leaves the old one whole; then the
    folder is made. Returns it."""
    if getattr(args, "overwrite", False) and not getattr(args, "resume", False):
        clear_run_folder(output)
    Path(output).mkdir(parents=True, exist_ok=True)
    return Path(output)


def run_files(output):
    """The files and folders of a run in `output` (`RUN_FILES`), as paths relative to it ("logs/head"), sorted: what a
    finished run's summary says it wrote, never a user's own files beside them."""
    output = Path(output)
    found = {path for pattern in RUN_FILES for path in output.glob(pattern)}
    logs = output / "logs"
    if logs.is_dir():
        found |= {path for path in logs.iterdir() if path.match(EVENTS) or path.is_dir() and any(path.rglob(EVENTS))}
    return sorted(path.relative_to(output).as_posix() for path in found)


def clear_run_folder(output):
    """`--overwrite`: remove the previous run's files from `output` (`RUN_FILES`); any other file stays. Returns the
    names removed.

    Raises:
        FileExistsError: the folder holds files but no run of ours (no config.json, state.json, model.keras...).
    """
    import shutil

    output = Path(output)
    if not check_replaceable(output):
        return []
    removed = run_files(output)
    for path in (output / name for name in removed):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    logs = output / "logs"
    if logs.is_dir() and not any(logs.iterdir()):
        logs.rmdir()
    return removed


def check_run_folder(args, interrupted="state.json"):
    """The rules of a training run's folder (`args.output`, `args.resume`, `args.overwrite`): a new run refuses a
    folder holding a model or an interrupted run (its mark: `interrupted`, a file or folder); `--resume` needs the
    latter, on the data it began with; `--overwrite` needs a folder holding a run (or none), whose files are removed
    at the new run's first write (`prepare_run_folder`). Returns the folder.

    Raises:
        ValueError / FileExistsError: with the option to pass instead.
    """
    output = check_output_folder(args.output)
    if args.resume and getattr(args, "overwrite", False):
        raise ValueError("--resume continues the run in --output and --overwrite replaces it: pass one of them")
    if getattr(args, "overwrite", False):
        check_replaceable(output)  # removed by prepare_run_folder, at the run's first write
        return output
    if args.resume:
        if (output / "model.keras").exists():
            raise FileExistsError(f"{output}: nothing to resume (it holds a finished run: {output / 'model.keras'})")
        if not (output / interrupted).exists():
            raise ValueError(f"{output}: nothing to resume (no interrupted run there)")
        _check_same_data(args, output)
        return output
    if (output / "model.keras").exists():
        raise FileExistsError(f"{output} already holds a model; pass --overwrite or pick another --output")
    if (output / interrupted).exists():
        raise FileExistsError(f"{output} holds an interrupted run; pass --resume to continue it, or --overwrite")
    return output


def _check_same_data(args, output):
    """`--resume` goes on with the data the run began with: its config.json's "data" against the command's data
    folder (`args.data`, or `args.folder` for faces), when both are known.

    Raises:
        ValueError: the run was on other data.
    """
    data = getattr(args, "data", None) or getattr(args, "folder", None)
    config = output / "config.json"
    if not isinstance(data, str | Path) or not config.exists():
        return
    saved = json.loads(config.read_text()).get("data")
    if saved and Path(data).resolve() != Path(saved).resolve():
        raise ValueError(f"--resume: {output} is a run on {saved}, not on {data}; pass that folder to resume it")


def check_train_output(args):
    """`check_run_folder` for the phase loop (`dlapps.training.fit_phases`): the folder and its state
    ({"phase_done": N}; a new run's is {"phase_done": 0})."""
    output = check_run_folder(args)
    state = output / "state.json"
    return output, json.loads(state.read_text()) if args.resume else {"phase_done": 0}


def output_names(paths):
    """{path: a name for its outputs}: the file's stem, or, when two inputs share a stem (photo.png and photo.jpg,
    or a/photo.jpg and b/photo.jpg), the stem with its extension and then its folder, so no output overwrites
    another."""
    paths = [Path(p) for p in paths]
    names = {p: p.stem for p in paths}
    for make in (lambda p: f"{p.stem}_{p.suffix.lstrip('.').lower()}", lambda p: f"{p.parent.name}_{p.stem}_"
                 f"{p.suffix.lstrip('.').lower()}"):  # fmt: skip
        counts = {}
        for name in names.values():
            counts[name] = counts.get(name, 0) + 1
        names = {p: make(p) if counts[names[p]] > 1 else names[p] for p in paths}
    return names


def new_run_folder(base):
    """`base` when it does not exist or is empty, else the first free `base2`, `base3`, ... (Ultralytics numbers its
    predict runs the same way): a verb's default folder for its pictures, so one run's files never mix with, or
    overwrite, another's (two models' detections of the same photo). An --output the user gives is used as it is."""
    base = Path(base)
    number = 1
    while True:
        folder = base if number == 1 else base.with_name(f"{base.name}{number}")
        if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
            return folder
        number += 1


def default_output(model_dir, name, app):
    """Where a verb writes by default: beside a user's own model, but under runs/ for a shipped one (never into
    saved_models/ or the source tree)."""
    model_dir = Path(model_dir).resolve()
    if str(model_dir) == str(Path("imagenet").resolve()) or is_shipped(model_dir):
        return Path("runs") / app / name
    return (model_dir if model_dir.is_dir() else model_dir.parent) / name
