"""Command line of the cat classifier: `dlapps cat train|evaluate|predict|export`."""

from dlapps.apps.cat_classifier.config import CatConfig
from dlapps.cli.common import (
    Verb,
    add_beam_arguments,
    add_data_argument,
    count_inputs,
    fraction,
    positive_float,
    positive_int,
    print_results,
)

DESCRIPTION = (
    "Cat / non-cat classifier: the deep-learning course's first task. Train the course's ladder of models "
    "(logistic regression, deep MLP, CNN, ResNet, pretrained transfer) and compare them; evaluate with a bias/"
    "variance readout and an error-analysis gallery; predict image files; export a SavedModel or TFLite file."
)
DEFAULTS = CatConfig()


def _add_model_dir(parser):
    parser.add_argument(
        "--model-dir",
        "--model",
        dest="model_dir",
        default="cat",
        help="trained model folder (holds model.keras), a preset ('cat': the shipped model), or 'imagenet': the "
        "zero-shot ImageNet baseline, no training",
    )


def add_train_arguments(parser):
    add_data_argument(
        parser, "the catvnoncat folder or train .h5 file, or an image folder with cat/ and non-cat/ subfolders"
    )
    parser.add_argument("--output", required=True, help="folder for the model, its config, metrics and plots")
    parser.add_argument(
        "--model",
        default=DEFAULTS.model,
        choices=["logreg", "mlp", "cnn", "resnet", "transfer", "imagenet"],
        help="architecture: the course's ladder, 'transfer' (EfficientNet-Lite0 + new head) or 'imagenet' "
        "(zero-shot, no training: cat = ImageNet cat classes)",
    )
    parser.add_argument(
        "--dev",
        default=None,
        help="a folder of real photos (cat/, non-cat/) from the distribution you care about: "
        "measured after training (never trained on) for the train / train-dev / dev readout",
    )
    parser.add_argument("--epochs", type=positive_int, default=DEFAULTS.epochs, help="most epochs (early stopping)")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size, help="images per step")
    parser.add_argument("--learning-rate", type=positive_float, default=DEFAULTS.learning_rate, help="initial rate")
    parser.add_argument("--optimizer", default=DEFAULTS.optimizer, choices=["adam", "sgd", "rmsprop"], help="optimiser")
    parser.add_argument(
        "--lr-decay",
        default=DEFAULTS.lr_decay,
        choices=["none", "inverse_time", "exponential", "cosine"],
        help="learning-rate decay over epochs",
    )
    parser.add_argument("--l2", type=float, default=DEFAULTS.l2, help="L2 regularisation factor (0: none)")
    parser.add_argument("--dropout", type=fraction, default=DEFAULTS.dropout, help="dropout rate before the output")
    parser.add_argument("--no-batch-norm", dest="batch_norm", action="store_false", help="disable batch norm")
    parser.add_argument("--hidden-units", type=int, nargs="+", default=list(DEFAULTS.hidden_units), help="mlp widths")
    parser.add_argument("--filters", type=int, nargs="+", default=list(DEFAULTS.filters), help="cnn/resnet filters")
    parser.add_argument("--no-augment", dest="augment", action="store_false", help="disable augmentation")
    parser.add_argument("--patience", type=int, default=DEFAULTS.patience, help="early-stopping patience on dev")
    parser.add_argument(
        "--dev-fraction", type=fraction, default=DEFAULTS.dev_fraction, help="held-out train-dev share of the data"
    )
    parser.add_argument(
        "--image-size", type=positive_int, default=DEFAULTS.image_size[0], help="square input size in pixels"
    )
    parser.add_argument(
        "--weights",
        default=DEFAULTS.weights,
        help="pretrained base for transfer/imagenet: 'imagenet' (offline, from the packaged checkpoint), "
        "'none' or a weights PATH",
    )
    parser.add_argument(
        "--backbone-image-size",
        type=positive_int,
        default=DEFAULTS.backbone_image_size,
        help="size the pretrained base sees (transfer/imagenet)",
    )
    parser.add_argument(
        "--imagenet-veto",
        default=DEFAULTS.imagenet_veto,
        choices=["dog", "none"],
        help="transfer: scale P(cat) by 1 - P(dog) under the backbone's ImageNet head (the data-mismatch remedy)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the split, augmentation, weights")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --output")


def add_evaluate_arguments(parser):
    add_data_argument(parser, "test .h5 file, catvnoncat folder, or image folder")
    _add_model_dir(parser)
    parser.add_argument("--threshold", type=fraction, default=None, help="decision threshold (default: the model's)")
    parser.add_argument(
        "--output", "--report-dir", dest="output", default="runs/cat/evaluate", help="where to write the plots"
    )


def add_predict_arguments(parser):
    parser.add_argument("paths", nargs="+", help="image files and/or folders")
    _add_model_dir(parser)
    parser.add_argument(
        "--threshold", type=fraction, default=None, help="P(cat) above which an image is a cat (default: the model's)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per forward pass")
    add_beam_arguments(parser)


def add_export_arguments(parser):
    _add_model_dir(parser)
    parser.add_argument("--format", default="saved_model", choices=["saved_model", "tflite"], help="export format")
    parser.add_argument(
        "--output",
        default=None,
        help="output path (default: beside a model you trained; under runs/cat/ for the shipped one)",
    )


VERBS = [
    Verb(
        "train",
        "train a model on catvnoncat or an image folder",
        add_train_arguments,
        "dlapps.apps.cat_classifier.train:train",
    ),
    Verb(
        "evaluate",
        "metrics, bias/variance readout, error gallery",
        add_evaluate_arguments,
        "dlapps.apps.cat_classifier.evaluate:evaluate",
    ),
    Verb(
        "predict",
        "label and P(cat) for image files and folders",
        add_predict_arguments,
        "dlapps.cli.cat:predict",
    ),
    Verb(
        "export",
        "write a deployable SavedModel or TFLite file",
        add_export_arguments,
        "dlapps.apps.cat_classifier.evaluate:export",
    ),
]


def predict(args):
    from dlapps.apps.cat import CatClassifier

    classifier = CatClassifier.from_folder(args.model_dir, threshold=args.threshold)

    def text(result):
        line = f"{result.source}: {result.label} (P(cat) = {result.probability:.3f})"
        top = result.extra.get("imagenet_top")
        return line + (f"\n    ImageNet top class: {top['label']} ({top['probability']:.3f})" if top else "")

    results = classifier.predict_iter(args.paths, args.batch_size)
    return print_results(args, results, text, count_inputs(args.paths))
