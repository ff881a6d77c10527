"""What the command line prints: JSON records or text, one-line notices through the `dlapps` logger, progress bars,
and the predict verbs' one printing loop."""

import json
import logging
import sys
import time

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2  # bad input (a user's mistake), or some inputs failed while the others were done


def to_json(payload, **kwargs):
    """Strict JSON of a result: NaN and infinities are written as null, never as the invalid `NaN`."""
    from dlapps.results import finite

    return json.dumps(finite(payload), allow_nan=False, **kwargs)


def counted(number, noun):
    """'1 image', '2 images': a count with its noun in the right number (nouns taking a plain -s)."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def emit(args, payload, text):
    """A verb's result: one JSON line with --json, else the human text. A Python caller (`args.records`, a list: the
    app classes' `_run_verb`) gets the payload appended there instead, and the text at INFO on the `dlapps` logger:
    the verbs never print for it."""
    records = getattr(args, "records", None)
    if records is not None:
        records.append(payload)
        if text:
            logging.getLogger("dlapps").info("%s", text)
        return
    print(to_json(payload) if args.json else text, flush=True)


def say(args, text, with_json=False):
    """A line for people (a plan, a table, a summary): printed on stdout, or on stderr with --json when `with_json`
    (else not at all with --json); for a Python caller (`args.records`), INFO on the `dlapps` logger."""
    if getattr(args, "records", None) is not None:
        logging.getLogger("dlapps").info("%s", text)
    elif not args.json or with_json:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)


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
