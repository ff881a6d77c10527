"""Command line of face verification: `dlapps faces verify|enroll|identify|gallery|evaluate|calibrate|export`."""

import argparse

from dlapps.cli.common import Verb, add_beam_arguments, add_run_arguments
from dlapps.cli.options import add_config_options
from dlapps.cli.types import fraction, non_negative_int, positive_float, positive_int

# The smallest face aligned, as dlapps.data.faces.MIN_FACE_SIDE (not imported: --help loads no OpenCV).
MIN_FACE_SIDE = 20

DESCRIPTION = (
    "Face verification and recognition (the course's face week): YuNet finds and aligns each face, a network maps "
    "it to a 128-D unit embedding, and two faces are the same person when their distance is below the model's "
    "calibrated threshold. Verify two photos, enroll people into a SQLite gallery and identify faces against it, "
    "measure on pairs (the LFW protocol), calibrate the threshold on your own pairs, export the embedding model."
)


def _add_model(parser):
    parser.add_argument(
        "--model", default="dlib", help="face model folder, or the preset 'dlib' (the shipped one, dlib's ResNet)"
    )


def add_verify_arguments(parser):
    parser.add_argument("image_a", help="an image with a face (the largest face is used)")
    parser.add_argument("image_b", help="another image with a face")
    parser.add_argument(
        "--all-faces", action="store_true",
        help="compare every face of image_a with every face of image_b: one record per pair (with both boxes), "
             "the closest pair first",
    )  # fmt: skip
    _add_model(parser)
    parser.epilog = (
        "distance: between the two faces' unit embeddings (0 to 2); same person when at most the model's threshold, "
        "calibrated on dev pairs. confidence: the probability of the verdict given the distance (P(same person) "
        "for 'same', 1 - P(same person) for 'different'), from a logistic curve fitted on those pairs: near 0.5 "
        "close to the threshold, near 1 far from it. Several faces in a photo: the largest is used and a warning "
        "says how many were found and gives the box used (box_a, box_b, faces_a, faces_b in the JSON); "
        f"--all-faces compares them all. A face under {MIN_FACE_SIDE} pixels (the shorter side of its box) is too "
        "small to align and is refused with its size."
    )


def add_enroll_arguments(parser):
    parser.add_argument(
        "paths", nargs="+", metavar="PATH",
        help="a folder of person subfolders (people/alice/1.jpg), a flat folder of name.jpg photos (one person "
             "each, named by the file: younes.jpg -> younes), or, with --name, one person's photos and/or folder",
    )  # fmt: skip
    parser.add_argument("--name", default=None, help="enroll every photo given as this one person")
    parser.add_argument("--db", required=True, help="the gallery file (SQLite; created if missing)")
    _add_model(parser)
    parser.epilog = (
        "Each person is enrolled in one transaction, with the largest face of each photo; names are stored "
        "Unicode-normalised (NFC). A photo whose face is already within identify's threshold of another enrolled "
        'person is enrolled with a warning ("close to Alice, distance 0.17"). Exit code 2 when some photos or '
        "paths were left out (each named on stderr) or a person had no usable face: everyone else is enrolled."
    )


def add_embed_arguments(parser):
    parser.add_argument("paths", nargs="+", help="image files and/or folders")
    _add_model(parser)
    add_beam_arguments(parser)


def embed(args):
    """The largest face of each photo: its box, the face count and the 128-D embedding (one record each)."""
    from dlapps.apps.faces import FaceVerifier
    from dlapps.cli.common import print_results, report_problems
    from dlapps.data.images import list_image_files

    files, problems = list_image_files(args.paths)
    failures = report_problems(args, "dlapps faces", problems)
    app = FaceVerifier.from_folder(args.model)
    text = lambda r: f"{r.source}: face at {[round(v) for v in r.box]} of {r.faces}"  # noqa: E731
    failures += bool(print_results(args, app.predict_iter(files), text, len(files), "embedding"))
    return 2 if failures else None


def add_identify_arguments(parser):
    parser.add_argument("paths", nargs="+", help="image files and/or folders")
    parser.add_argument("--db", required=True, help="the gallery file made by enroll")
    parser.add_argument("--top-k", type=positive_int, default=3, help="how many people to list per face")
    parser.add_argument(
        "--match", default="nearest", choices=["nearest", "mean"],
        help="a person's distance: to their nearest enrolled image (on LFW: as accurate, and it calls far more "
        "strangers unknown: see the model card), or to the mean of their embeddings",
    )  # fmt: skip
    parser.add_argument("--all-faces", action="store_true", help="identify every face, not only the largest")
    parser.add_argument(
        "--threshold", type=positive_float, default=None,
        help="name a face only this close to a person (default: the model's open-set threshold, FAR 1e-3 on its "
             "calibration pairs, else its pair threshold)",
    )  # fmt: skip
    _add_model(parser)
    parser.epilog = (
        "When two or more enrolled people are within the threshold, the face is named after the closest, a warning "
        'names them all and the JSON record lists them in "ambiguous" (empty otherwise). Exit code 2 when some '
        "inputs could not be read or showed no usable face (each named on stderr): the others are identified."
    )
    add_beam_arguments(parser)


def add_gallery_arguments(parser):
    parser.add_argument("--db", required=True, help="the gallery file")
    parser.add_argument(
        "--remove", nargs="*", default=[], help="names of people to remove (compared Unicode-normalised, NFC)"
    )


def add_pairs_arguments(parser, output_help, output_default):
    parser.add_argument(
        "pairs", help="a pairs file (path_a<TAB>path_b<TAB>1|0, paths relative to it) or a folder of identities"
    )
    parser.add_argument("--output", default=output_default, help=output_help)
    parser.add_argument(
        "--pairs-per-person", type=positive_int, default=10, help="same-person pairs per identity (folders)"
    )
    parser.add_argument(
        "--same-pairs",
        type=positive_int,
        default=None,
        help="folders: this many same-person pairs in all, round-robin over the people (e.g. 1000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the pairs built from a folder")
    _add_model(parser)
    parser.epilog = (
        "A malformed line of a pairs file is named with its line number and skipped; a pair with an image that "
        "cannot be read or shows no usable face is named (with its line number) and left out; the others are "
        "measured, and the summary (and the JSON: pairs_evaluated, malformed_lines, pairs_left_out) says how many. "
        "Exit code 2 when any line or pair was left out, 0 when all were measured."
    )


def add_evaluate_arguments(parser):
    add_pairs_arguments(parser, "where the ROC and worst-pairs pictures go", "runs/faces/evaluate")


def add_calibrate_arguments(parser):
    add_pairs_arguments(parser, "the new, calibrated model folder", "runs/faces/calibrated")


def at_least_two(text):
    """argparse type: a whole number of at least 2 (P and K of a triplet batch)."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected at least 2 (a triplet needs two of each), got {text!r}")
    return value


# `dlapps faces train`'s options from FaceConfig's fields (dlapps.cli.options): what each means, and the types that
# are not a whole number of at least 1 or a number above 0.
TRAIN_HELP = {
    "backbone": "dlib's face ResNet (pretrained), EfficientNet-Lite0 (ImageNet) or a compact ResNet from scratch",
    "margin": "triplet margin alpha",
    "mining": "triplets",
    "people_per_batch": "P: people per batch (a triplet needs another person)",
    "images_per_person": "K: photos of each person per batch (a triplet needs two)",
    "epochs": "most epochs of the triplet phase (after the head or warm-up phases)",
    "head_epochs": "efficientnet_lite0: epochs of the new projection alone on the frozen base first (of the CosFace "
    "head with --warmup-epochs)",
    "warmup_epochs": "first, epochs of CosFace (a softmax over the training people; each epoch one pass over their "
    "faces, whatever --steps-per-epoch) before the triplet loss (0: off)",
    "fine_tune_fraction": "efficientnet_lite0: the top part of the base trained after the head (1: all of it)",
    "jitter": "shift and zoom training chips by up to this fraction of their side (0: off)",
    "steps_per_epoch": "triplet batches per epoch",
    "learning_rate": "Adam's rate",
    "patience": "a phase stops after this many epochs without a better dev accuracy",
    "seed": "seed of the dev people, batches and weights: the same people and split every time (training itself "
    "still varies a little from run to run, as TensorFlow's parallel CPU kernels do)",
}
TRAIN_TYPES = {
    "backbone": ["dlib", "efficientnet_lite0", "small_resnet"],
    "mining": ["semi_hard", "batch_hard"],
    "people_per_batch": at_least_two,
    "images_per_person": at_least_two,
    "warmup_epochs": non_negative_int,
    "fine_tune_fraction": fraction,
    "jitter": fraction,
    "seed": int,
}


def add_train_arguments(parser):
    from dlapps.apps.face_verification.config import FaceConfig

    parser.add_argument("folder", help="one subfolder per person (2 or more photos each; at least 4 such people)")
    parser.add_argument("--output", required=True, help="the new model folder")
    add_config_options(parser, FaceConfig(), TRAIN_HELP, TRAIN_TYPES)
    parser.add_argument("--weights", default=None,
                        help="'dlib', 'imagenet', 'none' or a weights PATH (default: the backbone's own: "
                             "dlib for dlib, imagenet for efficientnet_lite0, none for small_resnet)")  # fmt: skip
    add_run_arguments(parser)


def add_export_arguments(parser):
    _add_model(parser)
    parser.add_argument("--format", default="saved_model", choices=["saved_model", "tflite"], help="export format")
    parser.add_argument(
        "--output", default=None,
        help="the SavedModel folder or .tflite file (default: export/ beside your model; runs/faces/export/ for the "
             "shipped one)",
    )  # fmt: skip


VERBS = [
    Verb("verify", "are two photos the same person? distance, decision, confidence", add_verify_arguments,
         "dlapps.apps.face_verification.app:verify"),
    Verb("enroll", "add people (a folder each, name.jpg photos, or photos with --name) to a gallery",
         add_enroll_arguments,
         "dlapps.apps.face_verification.people:enroll"),
    Verb("embed", "each photo's largest face as a 128-D embedding (JSON; with --runner, Parquet too)",
         add_embed_arguments, "dlapps.cli.faces:embed"),
    Verb("identify", "who is in these photos? (or 'unknown')", add_identify_arguments,
         "dlapps.apps.face_verification.people:identify"),
    Verb("gallery", "list the people of a gallery, or remove some", add_gallery_arguments,
         "dlapps.apps.face_verification.people:gallery"),
    Verb("evaluate", "accuracy, 10-fold accuracy, ROC AUC, EER, TAR@FAR on pairs", add_evaluate_arguments,
         "dlapps.apps.face_verification.evaluate:evaluate"),
    Verb("calibrate", "choose the threshold on your own pairs", add_calibrate_arguments,
         "dlapps.apps.face_verification.evaluate:calibrate"),
    Verb("train", "triplet-loss training on a folder of identities", add_train_arguments,
         "dlapps.apps.face_verification.train:train"),
    Verb("export", "SavedModel or TFLite: aligned chips in, embeddings out", add_export_arguments,
         "dlapps.apps.face_verification.evaluate:export"),
]  # fmt: skip
