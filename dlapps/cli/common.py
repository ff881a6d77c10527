"""The one shared command-line builder: verbs, common flags, errors and exit codes for every app.

Nothing here imports TensorFlow, so `--help` answers at once; a verb's handler is imported only when it runs.
"""

import argparse
import difflib
import importlib
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

# Re-exported: the apps' modules import these from here.
from dlapps.cli.output import (  # noqa: F401
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    ProgressBar,
    configure_logging,
    count_inputs,
    counted,
    emit,
    keras_verbosity,
    print_results,
    readable_files,
    report_problems,
    say,
    to_json,
    warn,
)
from dlapps.cli.run_folders import (  # noqa: F401
    RUN_MARKS,
    add_run_arguments,
    check_output_folder,
    check_replaceable,
    check_run_folder,
    check_train_output,
    clear_run_folder,
    default_model_dir,
    default_output,
    new_run_folder,
    output_names,
    prepare_run_folder,
    run_files,
)
from dlapps.cli.types import fraction, momentum, non_negative_int, positive_float, positive_int  # noqa: F401
from dlapps.quiet import quiet_native_stderr


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
        if isinstance(action.default, (list, tuple)):  # as typed: "0.002 0.0005", not "[0.002, 0.0005]"
            return f"{text} (default: {' '.join(str(value) for value in action.default)})"
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the full usage stays in --help)."""

    def error(self, message):
        prog = f"{self.prog} {self.verb}" if getattr(self, "verb", None) else self.prog
        self.exit(EXIT_BAD_INPUT, f"{prog}: error: {message}{self._did_you_mean(message)} (see {prog} --help)\n")

    def _did_you_mean(self, message):
        """'; did you mean --learning-rate?' for a mistyped option (difflib; Python 3.12's suggest_on_error is newer
        than the 3.10 we support)."""
        import difflib

        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:  # a mistyped verb or choice: argparse lists the choices, difflib picks the nearest
            known = [word.strip(" '") for word in choice.group(2).split(",")]
            guess = difflib.get_close_matches(choice.group(1), known, n=1)
            return f"; did you mean '{guess[0]}'?" if guess else ""
        if "unrecognized arguments:" not in message:
            return ""
        options = [o for action in self._actions for o in action.option_strings]
        verb = getattr(self, "verb", None)
        for action in self._actions:  # the chosen verb's options too (unrecognized words reach the top parser)
            for name, sub in (getattr(action, "choices", None) or {}).items():
                if isinstance(sub, argparse.ArgumentParser) and verb in (None, name):
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
        parser.verb = args.verb  # "did you mean" among this verb's options only
        parser.parse_args(argv)  # the usual error (and "did you mean") for an unknown option
    merge_data_option(args, parser._subparsers._group_actions[0].choices[args.verb])
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
    from dlapps.backbones import WEIGHT_WORDS
    from dlapps.presets import PRESETS, preset_dir, presets

    dest = "model_dir" if getattr(args, "model_dir", None) else "model" if args.verb not in ("train", "tune") else None
    model = getattr(args, dest, None) if dest else None
    if isinstance(model, str) and model != "imagenet" and not Path(model).exists():
        if model not in PRESETS:
            names = presets(app) or list(PRESETS)
            close = difflib.get_close_matches(model, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"{model}: no such model folder (nor a preset name: {', '.join(names)}){hint}")
        # A preset name becomes its folder here, once: every handler then sees a model folder.
        setattr(args, dest, str(preset_dir(model, app if presets(app) else None)))
    weights = getattr(args, "weights", None)
    words = WEIGHT_WORDS.get(app, ())
    if isinstance(weights, str) and weights not in words and not Path(weights).exists():
        close = difflib.get_close_matches(weights, words, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ValueError(f"--weights {weights}: no such weights file ({hint}give {', '.join(words)} or a file)")
    for dest in ONE_INPUT:
        value = getattr(args, dest, None)
        if isinstance(value, str) and not Path(value).exists():
            raise ValueError(f"{value}: no such file or folder")
    exported = getattr(args, "exported", None)  # exports to compare with the model: each one is needed
    for path in [exported] if isinstance(exported, str) else exported or []:
        if not Path(path).exists():
            raise ValueError(f"--exported {path}: no such file or folder")
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
