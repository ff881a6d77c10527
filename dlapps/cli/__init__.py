"""The `dlapps` command line: `dlapps <app> <verb>` dispatches to one app's module in this package."""

import importlib
import sys

APPS = {
    "cat": ("dlapps.cli.cat", "cat / non-cat classifier (the course's first task)"),
    "finetune": ("dlapps.cli.finetune", "fine-tune a pretrained backbone on your own folder of pictures"),
    "faces": ("dlapps.cli.faces", "face verification and recognition (verify, enroll, identify)"),
    "style": ("dlapps.cli.style", "neural style transfer: fast models in one pass, or optimisation (Gatys et al.)"),
    "detect": ("dlapps.cli.detect", "YOLO-style object detector trained on your own annotated photos"),
    "serve": ("dlapps.cli.serve", "a web page and REST API for the apps, webcam and video (dlapps[serve])"),
}
ALIASES = {
    "cat_classifier": "cat",
    "fine_tuner": "finetune",
    "fine-tune": "finetune",
    "face_verification": "faces",
    "object_detector": "detect",
    "detector": "detect",
}

USAGE = "usage: dlapps [-h] [--version] APP VERB [options] | dlapps serve [options]\n\nApps:\n" + "\n".join(
    f"  {name:<10} {description}" for name, (_, description) in APPS.items()
)
HELP = (
    USAGE
    + "\n\n`dlapps APP --help` lists each app's verbs (train, evaluate, predict, export and the app's own).\n"
    + "Example: dlapps cat predict examples/\n"
)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--version":
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"dlapps {version('dlapps')}")
        except PackageNotFoundError:
            print("dlapps (not installed; run from the source tree)")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return 0 if argv else 2
    name = ALIASES.get(argv[0], argv[0])
    if name not in APPS:
        print(f"{USAGE}\ndlapps: error: unknown app '{argv[0]}' (choose from {', '.join(APPS)})", file=sys.stderr)
        return 2
    module = importlib.import_module(APPS[name][0])
    if name == "serve":
        return module.main(argv[1:], prog=f"dlapps {name}")
    from dlapps.cli.common import run

    return run(f"dlapps {name}", module.DESCRIPTION, module.VERBS, argv[1:])
