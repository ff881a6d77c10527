"""What every app class shares: presets and model folders, the inputs rule, the one-bad-input-never-stops-the-rest
loop of `predict_iter`, and the verbs (`train`, `evaluate`, `export`) whose options are the command line's.

Inputs, everywhere: a path (str or `os.PathLike`; a folder means the images in it), encoded bytes, a PIL image, or
a NumPy (H, W, 3) uint8 RGB array, all through `dlapps.data.images`' one decoding rule; `predict_iter` also takes an
iterable of them.
"""

import json
import logging
import os
from pathlib import Path

import numpy as np

from dlapps.data.images import ImageReadError
from dlapps.results import Failure, Report, input_name

log = logging.getLogger("dlapps")


def to_image(source):
    """One input as RGB uint8 (H, W, 3), by the one decoding rule.

    Raises:
        ImageReadError: an unreadable file or bytes, or an array of the wrong shape or dtype (the message names it).
    """
    from dlapps.data.images import decode_image, pillow_to_rgb, read_image

    if isinstance(source, (str, os.PathLike)):
        return read_image(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(bytes(source), input_name(source) if isinstance(source, bytes) else "<bytes>")
    if isinstance(source, np.ndarray):
        image = source
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8:  # RGBA: onto white, as files are
            from PIL import Image

            return pillow_to_rgb(Image.fromarray(image, "RGBA"))
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
            raise ImageReadError(
                f"<ndarray>: expected RGB uint8 pixels of shape (H, W, 3) (or (H, W) grey, (H, W, 4) RGBA); received "
                f"shape={source.shape}, dtype={source.dtype}"
                + ("; 0-1 floats: (image * 255).round().astype('uint8')" if source.dtype.kind == "f" else "")
            )
        return image
    if hasattr(source, "getbands"):  # a PIL image
        return pillow_to_rgb(source)
    raise ImageReadError(f"<{type(source).__name__}>: not an image; pass a path, bytes, a PIL image or an ndarray")


def source_path(source):
    """An input's path as text when it is a path (for messages naming the file), else None."""
    return str(source) if isinstance(source, str) or hasattr(source, "__fspath__") else None


def is_single_input(inputs):
    """True when `inputs` is one image (not a folder nor an iterable of images)."""
    if isinstance(inputs, (str, os.PathLike)):
        return not Path(inputs).is_dir()
    return isinstance(inputs, (bytes, bytearray, memoryview, np.ndarray)) or hasattr(inputs, "getbands")


def expand_inputs(inputs):
    """The inputs one by one: folders become their image files (`list_image_files`' rule: hidden files skipped,
    sorted); a missing path or an empty folder yields a `Failure` in its place."""
    from dlapps.data.images import list_image_files

    items = [inputs] if is_single_input(inputs) or isinstance(inputs, (str, os.PathLike)) else inputs
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            files, problems = list_image_files([item])
            for path, message in problems:
                yield Failure(path, message)
            yield from files
        else:
            yield item


def failure(source, error=None):
    """A `Failure` record of an input and its exception (or `source` already a `Failure`, from `expand_inputs`),
    logged as a warning on the `dlapps` logger."""
    record = source if isinstance(source, Failure) else Failure(source, str(error), type(error).__name__)
    log.warning("error: %s", record.error)
    return record


class App:
    """The shared part of the app classes. Subclasses set `app` (the CLI's app name) and `cli` (its module)."""

    app = None
    cli = None

    def __init__(self, model, config, folder=None):
        self.model = model
        self.config = dict(config)
        self.folder = None if folder is None else Path(folder)

    def __repr__(self):
        return f"{type(self).__name__}(folder={str(self.folder)!r})"

    @classmethod
    def from_preset(cls, name=None, **options):
        """The app with a shipped model (`dlapps.presets.presets(app)` lists them; None: the app's default).

        Raises:
            ValueError: an unknown preset, or one of another app.
        """
        from dlapps.presets import DEFAULTS, preset_dir

        return cls.from_folder(preset_dir(name or DEFAULTS.get(cls.app, ""), cls.app), **options)

    @classmethod
    def from_folder(cls, folder, **options):
        """The app with a trained model folder (`model.keras` and `config.json`; another app's folder is refused).

        Raises:
            ValueError: the folder is missing, is not a model folder, or was made by another app.
        """
        from dlapps.inference import load_model_dir

        model, config = load_model_dir(folder, cls.app)
        return cls(model, config, folder, **options)

    def predict(self, image, **options):
        """One input's result; raises `ImageReadError` (a `ValueError`) for an unreadable input."""
        raise NotImplementedError

    def predict_iter(self, inputs, **options):
        """Results of many inputs, in order, one at a time: an input that cannot be read yields a `Failure` (and a
        warning on the `dlapps` logger) and the rest go on. Folders are expanded to their image files."""
        for item in expand_inputs(inputs):
            if isinstance(item, Failure):
                yield failure(item)
                continue
            try:
                yield self.predict(item, **options)
            except ValueError as error:
                yield failure(item, error)

    # === The verbs the command line also runs: its options by their dests (`learning_rate`), same defaults ===

    @classmethod
    def train(cls, data, output, **options):
        """Train a new model on `data` into the run folder `output` (the app's `train` verb) and return it, with
        `report`: the run's summary (what `train --json` prints)."""
        return cls._trained(cls._run_verb("train", [data], output=output, **options), output)

    @classmethod
    def _trained(cls, report, output):
        trained = cls.from_folder(output)
        trained.report = report
        return trained

    def evaluate(self, data, **options):
        """The app's `evaluate` verb on `data` with this model: a `Report` of its metrics (`evaluate --json`)."""
        return self._run_verb("evaluate", [data], **{self.model_option: self.folder, **self.made_with("evaluate"),
                                                     **options})  # fmt: skip

    def export(self, format="saved_model", output=None, **options):
        """The app's `export` verb: a `Report` with the written `path` and its size in `bytes`."""
        return self._run_verb("export", **{self.model_option: self.folder, "format": format, "output": output,
                                           **self.made_with("export"), **options})  # fmt: skip

    def made_with(self, verb):
        """The options this instance was made with that `verb` also takes (the detector's thresholds): its
        evaluation and its export answer as its `predict` does unless a call gives its own. {} here."""
        return {}

    @classmethod
    def cli_options(cls, verb, positional=(), method=None, **options):
        """The command line's options of a verb, as parsed from `positional` (its positional words) and `options`
        (named by their dests, e.g. `learning_rate`), with the CLI's defaults and checks for the rest.

        Raises:
            TypeError: an option the verb does not have, or a required one missing.
            ValueError: a value the command line would refuse.
        """
        import argparse
        import importlib

        from dlapps.cli.common import build_parser

        module = importlib.import_module(cls.cli)
        parser = build_parser(f"dlapps {cls.app}", module.DESCRIPTION, module.VERBS)
        verb_parser = parser._subparsers._group_actions[0].choices[verb]
        argv = [verb, *map(str, positional)]
        options = dict(options)
        for action in verb_parser._actions:  # required options (`--output`) are given on the "command line"
            if action.required and action.option_strings:
                if action.dest not in options:
                    raise TypeError(f"{cls.__name__}.{method or verb}() needs the option {action.dest!r}")
                value = options.pop(action.dest)
                argv += [action.option_strings[0], *(map(str, value) if isinstance(value, list) else [str(value)])]
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            raise ValueError(f"{cls.app} {verb}: bad arguments {argv[1:]}") from None
        for key, value in options.items():
            if not hasattr(args, key) or key in ("handler", "verb", "json", "debug"):
                import difflib

                known = sorted(a.dest for a in verb_parser._actions if a.dest not in ("help", "json", "debug"))
                guess = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {guess[0]!r}?" if guess else f" (its options: {', '.join(known)})"
                raise TypeError(f"{cls.__name__}.{method or verb}() got an unexpected option {key!r}{hint}")
            action = next(a for a in verb_parser._actions if a.dest == key)
            if value is not None and (action.type or action.choices):  # the command line's checks and conversions
                many = isinstance(value, list | tuple)
                if many and action.nargs in (None, "?"):
                    raise ValueError(f"{key}: expected one value; received {value!r}")
                if isinstance(action.nargs, int) and (not many or len(value) != action.nargs):
                    names = f" ({', '.join(action.metavar)})" if isinstance(action.metavar, tuple) else ""
                    raise ValueError(f"{key}: expected {action.nargs} values{names}; received {value!r}")
                try:
                    checked = [action.type(str(v)) if action.type else v for v in (value if many else [value])]
                except (argparse.ArgumentTypeError, ValueError) as error:
                    raise ValueError(f"{key}: {error}") from None
                if action.choices and any(v not in action.choices for v in checked):
                    raise ValueError(f"{key}: expected one of {list(action.choices)}; received {value!r}")
                value = checked if many else checked[0]
            setattr(args, key, value)
        return args

    @classmethod
    def _run_verb(cls, verb, positional=(), **options):
        """Run a verb with keyword options named as the command line's (same defaults, same checks) and return its
        `--json` object as a `Report` (the same values: each record goes through the same strict JSON). The verb
        prints nothing: its records come back through `args.records`, its summary lines and warnings go to the
        `dlapps` logger (INFO and WARNING).

        Raises:
            TypeError: an option the verb does not have.
            ValueError: a bad option value or bad input (the CLI's message).
        """
        import importlib

        from dlapps.cli.output import to_json

        args = cls.cli_options(verb, positional, **options)
        args.json, args.debug, args.records = True, False, []
        module_name, function_name = args.handler.split(":")
        handler = getattr(importlib.import_module(module_name), function_name)
        code = handler(args)
        records = [json.loads(to_json(record)) for record in args.records]
        values = records[-1] if len(records) == 1 else {"records": records}
        if code not in (None, 0):
            values = {**values, "exit_code": code}
        return Report(values)
