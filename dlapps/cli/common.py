"""The one shared command-line builder: verbs, common flags, errors and exit codes for every app.

Nothing here imports TensorFlow, so `--help` answers at once; a verb's handler is imported only when it runs.
"""

import argparse
import importlib
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from dlapps.presets import is_shipped
from dlapps.quiet import quiet_native_stderr

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Verb:
    """One verb of an app: its name, help text, a function adding its flags, and 'module:function' to run."""

    name: str
    help: str
    add_arguments: object
    handler: str


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to an option's help, unless the help names its default itself or there is none."""

    def _get_help_string(self, action):
        text = action.help or ""
        flag = action.nargs == 0  # --resume, --no-augment: on or off, nothing to show.
        unset = action.default is None or action.default == "" or action.default is argparse.SUPPRESS
        if "default" in text or flag or unset or not action.option_strings:
            return text
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the full usage stays in --help)."""

    def error(self, message):
        self.exit(
            EXIT_BAD_INPUT, f"{self.prog}: error: {message}{self._did_you_mean(message)} (see {self.prog} --help)\n"
        )

    def _did_you_mean(self, message):
        """'; did you mean --learning-rate?' for a mistyped option (difflib; Python 3.12's suggest_on_error is newer
        than the 3.10 we support)."""
        import difflib

        if "unrecognized arguments:" not in message:
            return ""
        options = [o for action in self._actions for o in action.option_strings]
        for action in self._actions:  # the chosen verb's options too (unrecognized words reach the top parser)
            for sub in (getattr(action, "choices", None) or {}).values():
                if isinstance(sub, argparse.ArgumentParser):
                    options += [o for a in sub._actions for o in a.option_strings]
        words = [w.split("=")[0] for w in message.split("unrecognized arguments:")[1].split() if w.startswith("-")]
        guesses = [g for w in words for g in difflib.get_close_matches(w, sorted(set(options)), n=1, cutoff=0.6)]
        return f"; did you mean {', '.join(guesses)}?" if guesses else ""


def build_parser(prog, description, verbs):
    """An argparse parser with one subcommand per verb, each with the common flags."""
    parser = ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in verbs:
        sub = subparsers.add_parser(verb.name, help=verb.help, description=verb.help, formatter_class=HelpFormatter)
        verb.add_arguments(sub)
        sub.add_argument("--json", action="store_true", help="machine-readable output: one JSON object per result")
        sub.add_argument("--debug", action="store_true", help="show the full traceback on errors")
        sub.set_defaults(handler=verb.handler)
    return parser


def add_beam_arguments(parser):
    """`--runner`: the verb runs as an Apache Beam pipeline (`dlapps.beam`); Beam's own pipeline options
    (`--project`, `--region`, `--flink_master`, ...) pass through. Adds `--output` (a prefix) if the verb has none."""
    parser.add_argument(
        "--runner", default=None, choices=["direct", "dataflow", "flink", "spark"],
        help="run as an Apache Beam pipeline (pip install 'dlapps[beam]'): inputs are file patterns (local, gs://, "
             "s3://), records go to --output as sharded JSON Lines, failures to a dead-letter file; Beam's pipeline "
             "options (--project, --region, --temp_location, --flink_master, ...) pass through",
    )  # fmt: skip
    if "--output" not in parser._option_string_actions:
        parser.add_argument("--output", default=None, help="with --runner: the output prefix (a folder or gs://...)")


def run(prog, description, verbs, argv=None):
    """Parse arguments, run the verb's handler, and turn errors into one line and an exit code."""
    parser = build_parser(prog, description, verbs)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "runner", None):
        parser.parse_args(argv)  # the usual error (and "did you mean") for an unknown option
    merge_data_option(args, parser)
    if getattr(args, "runner", None):  # an Apache Beam pipeline; the rest of the command line is Beam's options
        args.pipeline_args, args.handler = extra, "dlapps.beam:run_from_args"
        args.app = prog.split()[-1]
        args.output = args.output or f"runs/{args.app}/beam"
    configure_logging(prog)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Keras warns that fit() ignores shuffle=True for a tf.data input; our pipelines shuffle themselves.
    warnings.filterwarnings("ignore", message=".*shuffle=True.*", category=UserWarning)
    # Dropping unreadable files makes a dataset's length unknown; Keras then warns at each epoch's end.
    warnings.filterwarnings("ignore", message=".*ran out of data.*", category=UserWarning)
    # TensorFlow's notice that tf.lite.Interpreter moves to another package: third-party chatter, not the user's news.
    warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated.*")
    module_name, function_name = args.handler.split(":")
    try:
        # Before TensorFlow is imported: a wrong path fails in well under a second (Beam's patterns are matched by
        # the pipeline: globs, gs://).
        if not getattr(args, "runner", None):
            check_inputs_exist(args, prog.split()[-1])
        with quiet_native_stderr(enabled=not args.debug):
            handler = getattr(importlib.import_module(module_name), function_name)
            import tensorflow as tf

            if not args.debug:  # e.g. "N out of the last M calls ... triggered tf.function retracing"
                tf.get_logger().setLevel("ERROR")
            if "TF_CONFIG" not in os.environ:
                # Initialise the runtime now, while its start-up chatter is silenced (a multi-worker strategy must
                # instead be created before the first operation, so it is left alone then).
                tf.constant(0)
        code = handler(args)
        return EXIT_OK if code is None else code
    except KeyboardInterrupt:
        hint = ""
        output = getattr(args, "output", None)
        resumable = output and any((Path(output) / name).exists() for name in ("state.json", "checkpoints"))
        if getattr(args, "resume", None) is not None and resumable:
            import shlex

            words = [word for word in sys.argv[1:] if word not in ("--resume", "--overwrite")]
            hint = f"; continue with: dlapps {shlex.join(words)} --resume"
        print(f"{prog}: interrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`dlapps ... | head`): not an error of ours. Stop writing to the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError) as error:
        # Our readers and builders raise ValueError for a user's mistake (bad file, bad layout, bad option).
        if args.debug:
            raise
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:
        if args.debug:
            raise
        message = f"{type(error).__name__}: {_one_line(error)} (rerun with --debug for the traceback)"
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_FAILURE


# Options naming one input file or folder, and options naming several (of which at least one must exist).
ONE_INPUT = ("data", "folder", "pairs", "image_a", "image_b", "dev")
SOME_INPUTS = ("paths", "content", "style")


def add_data_argument(parser, help):
    """The data a verb reads, positional as in every app (`dlapps cat train DATA`); `--data DATA`, the cat app's
    first spelling, still works (`merge_data_option`)."""
    parser.add_argument("data", nargs="?", default=None, help=help)
    parser.add_argument("--data", dest="data_option", default=None, help=argparse.SUPPRESS)


def merge_data_option(args, parser):
    """One `data` from the positional word or `--data` (argparse cannot give a positional and an option one dest:
    an absent positional would reset it). Exits through `parser.error` when neither or two different are given."""
    if not hasattr(args, "data_option"):
        return
    if args.data and args.data_option and args.data != args.data_option:
        parser.error(f"the data is given twice ({args.data} and --data {args.data_option}); give it once")
    args.data = args.data or args.data_option
    del args.data_option
    if args.data is None:
        parser.error("the following arguments are required: data")


def check_inputs_exist(args, app=None):
    """Refuse at once a model folder that is neither a folder nor a preset (a preset name is replaced by its folder),
    and input paths that do not exist (a batch with some missing paths goes on: the verb names each). Cheap: no
    TensorFlow.

    Raises:
        ValueError: naming the path.
    """
    from dlapps.presets import PRESETS, preset_dir, presets

    dest = "model_dir" if getattr(args, "model_dir", None) else "model" if args.verb not in ("train", "tune") else None
    model = getattr(args, dest, None) if dest else None
    if isinstance(model, str) and model != "imagenet" and not Path(model).exists():
        if model not in PRESETS:
            names = ", ".join(presets(app) or PRESETS)
            raise ValueError(f"{model}: no such model folder (nor a preset name: {names})")
        # A preset name becomes its folder here, once: every handler then sees a model folder.
        setattr(args, dest, str(preset_dir(model, app if presets(app) else None)))
    for dest in ONE_INPUT:
        value = getattr(args, dest, None)
        if isinstance(value, str) and not Path(value).exists():
            raise ValueError(f"{value}: no such file or folder")
    for dest in SOME_INPUTS:
        values = getattr(args, dest, None)
        if isinstance(values, list) and values and not any(Path(v).exists() for v in values):
            raise ValueError(f"{values[0]}: no such file or folder" + (f" (nor any of the {len(values)} given)"
                                                                        if len(values) > 1 else ""))  # fmt: skip


def _one_line(error):
    """The first line of an error message (library errors can span many): errors stay one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[0] + (" [...]" if len(lines) > 1 else "")


def default_model_dir(app_folder):
    """The shipped model of an app: package data in dlapps/saved_models/ (saved_models/ in a checkout)."""
    from dlapps.presets import SHIPPED_DIR

    return SHIPPED_DIR / app_folder


def to_json(payload, **kwargs):
    """Strict JSON of a result: NaN and infinities are written as null, never as the invalid `NaN`."""
    from dlapps.results import finite

    return json.dumps(finite(payload), allow_nan=False, **kwargs)


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


# What marks a folder as a run of ours: --overwrite removes only such a folder, never one of other files.
RUN_MARKS = ("config.json", "state.json", "model.keras", "checkpoints", "metrics.json")


def add_run_arguments(parser):
    """`--resume` and `--overwrite`, alike in every training verb."""
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run in --output, with the options it began with"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --output (a finished or interrupted one)"
    )


def clear_run_folder(output):
    """`--overwrite`: remove the previous run in `output` (nothing when the folder is missing or empty).

    Raises:
        FileExistsError: the folder holds files but no run of ours (no config.json, state.json, model.keras...).
    """
    import shutil

    output = Path(output)
    if not output.is_dir() or not any(output.iterdir()):
        return
    if not any((output / mark).exists() for mark in RUN_MARKS):
        raise FileExistsError(
            f"{output} holds files but no dlapps run (no config.json, state.json or model.keras): --overwrite only "
            "replaces a run; pick another --output"
        )
    shutil.rmtree(output)


def check_train_output(args):
    """The training run's folder and its state ({"phase_done": N}, `dlapps.training.fit_phases`'): a new run refuses
    a folder holding a model or an interrupted run; `--resume` needs the latter.

    Raises:
        ValueError / FileExistsError: with the option to pass instead.
    """
    import json

    output = check_output_folder(args.output)
    state = output / "state.json"
    if args.resume and getattr(args, "overwrite", False):
        raise ValueError("--resume continues the run in --output and --overwrite replaces it: pass one of them")
    if getattr(args, "overwrite", False):
        clear_run_folder(output)
    if args.resume:
        if (output / "model.keras").exists():
            raise FileExistsError(f"{output}: nothing to resume (this run finished: {output / 'model.keras'})")
        if not state.exists():
            raise ValueError(f"{output}: nothing to resume (no interrupted run there)")
        return output, json.loads(state.read_text())
    if (output / "model.keras").exists():
        raise FileExistsError(f"{output} already holds a model; pass --overwrite or pick another --output")
    if state.exists():
        raise FileExistsError(f"{output} holds an interrupted run; pass --resume to continue it, or --overwrite")
    return output, {"phase_done": 0}


def counted(number, noun):
    """'1 image', '2 images': a count with its noun in the right number (nouns taking a plain -s)."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


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


def default_output(model_dir, name, app):
    """Where a verb writes by default: beside a user's own model, but under runs/ for a shipped one (never into
    saved_models/ or the source tree)."""
    model_dir = Path(model_dir).resolve()
    if str(model_dir) == str(Path("imagenet").resolve()) or is_shipped(model_dir):
        return Path("runs") / app / name
    return (model_dir if model_dir.is_dir() else model_dir.parent) / name


def emit(args, payload, text):
    """Print a result: one JSON line with --json, else the human text."""
    print(to_json(payload) if args.json else text, flush=True)


def _number(text, accept, expected):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not accept(value):  # NaN fails every comparison, so it is refused here too.
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_float(text):
    """argparse type: a finite number above zero (a learning rate, a size); refuses nan, inf, 0 and negatives."""
    return _number(text, lambda value: 0 < value < float("inf"), "a finite number above 0")


def fraction(text):
    """argparse type: a finite number in [0, 1] (dropout, a split fraction)."""
    return _number(text, lambda value: 0 <= value <= 1, "a number from 0 to 1")


def momentum(text):
    """argparse type: a number in [0, 1) (a moving average's momentum; 1 would never move)."""
    return _number(text, lambda value: 0 <= value < 1, "a number from 0 up to (not including) 1")


def _whole_number(text, least):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least {least}, got {text!r}")
    return value


def positive_int(text):
    """argparse type: a whole number of at least 1 (epochs, batch size)."""
    return _whole_number(text, 1)


def non_negative_int(text):
    """argparse type: a whole number of at least 0 (epochs of an optional phase, patience)."""
    return _whole_number(text, 0)


class _CommandLineHandler(logging.Handler):
    """Prints the `dlapps` logger's records as the command line's one-line notices: "PROG: message" on stderr (the
    stream looked up at each record, so a redirected or captured stderr gets them)."""

    prog = "dlapps"

    def emit(self, record):
        print(f"{getattr(record, 'prog', self.prog)}: {record.getMessage()}", file=sys.stderr, flush=True)


_HANDLER = _CommandLineHandler()


def configure_logging(prog):
    """The command line's output of the library's `dlapps` logger (the door configures it; the library never does)."""
    _HANDLER.prog = prog
    logger = logging.getLogger("dlapps")
    if _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)
        logger.propagate = False
        logger.setLevel(logging.INFO)


def warn(prog, message):
    """One line on stderr (a skipped file, a notice), through the `dlapps` logger."""
    logging.getLogger("dlapps").warning("%s", message, extra={"prog": prog})


class ProgressBar:
    """A small progress bar on stderr, shown only for long work on a terminal or when asked."""

    def __init__(self, total, label, enabled=None):
        self.total, self.label, self.count = total, label, 0
        self.enabled = (sys.stderr.isatty() and total > 8) if enabled is None else enabled
        self.start = time.perf_counter()

    def update(self, amount=1):
        self.count += amount
        if not self.enabled:
            return
        width = 30
        done = int(width * self.count / max(1, self.total))
        rate = self.count / max(1e-9, time.perf_counter() - self.start)
        sys.stderr.write(f"\r{self.label} [{'=' * done}{'.' * (width - done)}] {self.count}/{self.total} {rate:.1f}/s")
        if self.count >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def keras_verbosity(args):
    """Keras' progress bar on a terminal, one line per epoch in a log file, nothing with --json."""
    if args.json:
        return 0
    return 1 if sys.stdout.isatty() else 2


def readable_files(prog, files, labels):
    """Decode every labelled file once, with a progress bar, naming each unreadable one; returns the readable
    (files, labels). Both apps' trainers call it before any split is made."""
    from dlapps.data.readers import check_images

    progress = ProgressBar(len(files), "checking images")
    readable, problems = check_images(files, progress.update)
    for _, message in problems:
        warn(prog, f"skipping unreadable image: {message}")
    keep = set(readable)
    return [f for f in files if f in keep], [label for f, label in zip(files, labels, strict=True) if f in keep]


def count_inputs(paths):
    """How many image files `paths` (files and folders) name: the total of a progress bar."""
    from dlapps.data.images import list_image_files

    return len(list_image_files(paths)[0])


def report_problems(args, prog, problems):
    """Paths that named no readable input (missing, an empty folder): one line each on stderr and, with --json, a
    failure record each. Returns how many."""
    for path, message in problems:
        warn(prog, f"error: {message}")
        if args.json:
            print(to_json({"path": str(path), "error": message, "kind": "ImageReadError"}), flush=True)
    return len(problems)


def print_results(args, results, text, total=0, label="predicting", on_result=None):
    """The `predict` verbs' one printing loop over an app's `predict_iter`: each result's `to_dict()` with --json
    (a failed input's record too), else `text(result)`; a failure's line went to stderr as it happened (the
    `dlapps` logger). `on_result(result)` runs first for each success (files a verb writes). Returns the exit code:
    2 when any input failed, the others still done."""
    progress = ProgressBar(total, label)
    failures = 0
    for result in results:
        progress.update()
        if not result.ok:
            failures += 1
            if args.json:
                print(to_json(result.to_dict()), flush=True)
            continue
        if on_result:
            on_result(result)
        emit(args, result.to_dict(), text(result))
    return EXIT_BAD_INPUT if failures else None
