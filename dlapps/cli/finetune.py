"""Command line of the fine-tuner: `dlapps finetune train|evaluate|predict|export`."""

from dlapps.apps.fine_tuner.config import SCRATCH_RECIPE, SCRATCH_STEPS, FineTuneConfig
from dlapps.backbones import BACKBONES
from dlapps.cli.common import (
    Verb,
    add_beam_arguments,
    add_run_arguments,
    count_inputs,
    fraction,
    momentum,
    non_negative_int,
    positive_float,
    positive_int,
    print_results,
)

DESCRIPTION = (
    "Fine-tune a pretrained backbone on your own folder of pictures (one subfolder per class, or train/ val/ test/ "
    "folders of class subfolders): train a new head on the frozen base, then unfreeze its top at a tenth of the "
    "learning rate; evaluate, predict top-k labels, and export a SavedModel (raw images in), TFLite or ONNX file."
)
DEFAULTS = FineTuneConfig()


def recipe_option(parser, flag, kind, about, scratch=""):
    """An option whose default differs from scratch (`--weights none`): its help gives both defaults."""
    key = flag.lstrip("-").replace("-", "_")
    more = f", {scratch}" if scratch else ""
    parser.add_argument(
        flag, type=kind, default=None,
        help=f"{about} (default: {getattr(DEFAULTS, key):g}; {SCRATCH_RECIPE[key]:g} from scratch{more})",
    )  # fmt: skip


def add_train_arguments(parser):
    parser.add_argument("data", help="folder of class subfolders, or with train/ val/ (test/) splits")
    parser.add_argument("--output", required=True, help="folder for the model, config, metrics, logs and plots")
    parser.add_argument(
        "--backbone",
        default=None,
        choices=BACKBONES,
        metavar="NAME",
        help=f"pretrained base: {', '.join(BACKBONES)} (default: {DEFAULTS.backbone}, whose ImageNet weights work "
        f"offline; with --weights none: {SCRATCH_RECIPE['backbone']}, a compact ResNet that trains from scratch)",
    )
    parser.add_argument(
        "--weights", default=DEFAULTS.weights, help="'imagenet', 'none' (from scratch) or a weights PATH"
    )
    parser.add_argument(
        "--base",
        default=DEFAULTS.base,
        help="transfer from a trained Keras classifier (.keras or model folder) instead of --backbone",
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        help=f"input size in pixels, square (default: {DEFAULTS.image_size}; "
        f"{SCRATCH_RECIPE['image_size']} from scratch)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size, help="images per step")
    parser.add_argument(
        "--head-epochs",
        type=positive_int,
        default=None,
        help=f"phase 1: new head, frozen base (default: {DEFAULTS.head_epochs}; from scratch: the one phase, "
        f"about {SCRATCH_STEPS} steps, at most 150 epochs)",
    )
    parser.add_argument(
        "--fine-tune-epochs", type=non_negative_int, default=DEFAULTS.fine_tune_epochs, help="phase 2 (0 skips it)"
    )
    recipe_option(parser, "--learning-rate", positive_float, "phase 1; phase 2 uses a tenth", scratch="cosine-annealed")
    recipe_option(parser, "--weight-decay", fraction, "decoupled weight decay, AdamW; 0: Adam")
    about = "average the weights with this momentum (0: none); dev is measured and the best epoch kept on the average"
    recipe_option(parser, "--ema-momentum", momentum, about)
    parser.add_argument(
        "--fine-tune-from",
        default=DEFAULTS.fine_tune_from,
        help="first base layer to unfreeze (name or index; default: --fine-tune-fraction of the base)",
    )
    recipe_option(parser, "--dropout", fraction, "dropout rate before the new head")
    recipe_option(parser, "--augment-strength", positive_float, "scales flip/rotation/zoom/colour augmentation")
    recipe_option(
        parser, "--augment-crop", fraction, "random crops: zoom in by up to this fraction of the side, shifted"
    )
    parser.add_argument(
        "--no-class-weights", dest="class_weights", action="store_false", help="do not weight classes by rarity"
    )
    parser.add_argument(
        "--no-augment", dest="augment", action="store_false", help="no flip/rotation/zoom/colour augmentation"
    )
    parser.add_argument(
        "--no-feature-cache", dest="cache_features", action="store_false",
        help="train on augmented images every epoch (2-4 times the time), not on the frozen part's features "
        "computed once",
    )  # fmt: skip
    recipe_option(parser, "--patience", positive_int, "early-stopping patience on dev, in epochs")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the split, augmentation and weights")
    parser.add_argument(
        "--fine-tune-fraction",
        type=fraction,
        default=DEFAULTS.fine_tune_fraction,
        help="top share of the base to unfreeze when --fine-tune-from is not given",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--strategy",
        default=DEFAULTS.strategy,
        choices=["default", "mirrored", "multi_worker"],
        help="tf.distribute strategy (multi_worker reads TF_CONFIG)",
    )
    parser.add_argument("--mixed-precision", action="store_true", help="float16 compute (for GPUs; slower on CPU)")


def add_train_only_arguments(parser):
    add_train_arguments(parser)
    parser.add_argument(
        "--members",
        type=positive_int,
        default=None,
        help=f"train N networks from seeds --seed, --seed+1, ... on the same split and average their probabilities "
        f"into one model (a seed ensemble), N times the time (default: {DEFAULTS.members})",
    )


def add_tune_arguments(parser):
    add_train_arguments(parser)
    parser.add_argument("--trials", type=positive_int, default=8, help="random-search trials")


def add_evaluate_arguments(parser):
    parser.add_argument("data", help="folder of class subfolders (or with a test/ split)")
    parser.add_argument("--model-dir", "--model", dest="model_dir", required=True, help="trained model folder")
    parser.add_argument(
        "--exported", nargs="*", default=[], help="exported SavedModel folders, .tflite or .onnx files to compare"
    )
    parser.add_argument(
        "--output", "--report-dir", dest="output", default="runs/finetune/evaluate", help="where to write the plots"
    )


def add_predict_arguments(parser):
    parser.add_argument("paths", nargs="+", help="image files and/or folders")
    parser.add_argument("--model-dir", "--model", dest="model_dir", required=True, help="trained model folder")
    parser.add_argument("--top-k", type=positive_int, default=3, help="how many labels to show per image")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per forward pass")
    add_beam_arguments(parser)


def add_export_arguments(parser):
    parser.add_argument("--model-dir", "--model", dest="model_dir", required=True, help="trained model folder")
    parser.add_argument(
        "--format",
        default="saved_model",
        choices=["saved_model", "tflite", "tflite_int8", "onnx"],
        help="SavedModel (raw images in), TFLite float or int8, or ONNX (resized float pixels in)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="output path (default: inside the model folder; runs/finetune/ for a shipped one)",
    )
    parser.add_argument(
        "--data", default=None, help="for tflite_int8: training images to calibrate with (default: the run's data)"
    )


VERBS = [
    Verb(
        "tune",
        "random search of learning rate, dropout and fine-tune depth on dev (keras-tuner)",
        add_tune_arguments,
        "dlapps.apps.fine_tuner.train:tune",
    ),
    Verb(
        "train",
        "fine-tune a backbone on a folder of pictures",
        add_train_only_arguments,
        "dlapps.apps.fine_tuner.train:train",
    ),
    Verb(
        "evaluate",
        "accuracy, per-class metrics, confusion matrix, worst mistakes",
        add_evaluate_arguments,
        "dlapps.apps.fine_tuner.evaluate:evaluate",
    ),
    Verb(
        "predict",
        "top-k labels with probabilities for image files and folders",
        add_predict_arguments,
        "dlapps.cli.finetune:predict",
    ),
    Verb(
        "export",
        "write a SavedModel, TFLite (float or int8) or ONNX file",
        add_export_arguments,
        "dlapps.apps.fine_tuner.evaluate:export",
    ),
]


def predict(args):
    from dlapps.apps.classifier import ImageClassifier

    classifier = ImageClassifier.from_folder(args.model_dir, top_k=args.top_k)

    def text(result):
        return f"{result.source}: " + ", ".join(
            f"{t['label']} {t['probability']:.3f}" for t in result.to_dict()["top_k"]
        )

    results = classifier.predict_iter(args.paths, args.batch_size)
    return print_results(args, results, text, count_inputs(args.paths))
