"""Defaults of neural style transfer, next to the app that uses them: the optimisation mode (Gatys et al.) and
`dlapps style train` (Johnson et al.'s fast networks).

The command line and the Python API (`StyleTransfer.optimise`, `StyleTransfer.train`) take these defaults; the
options have the same names. The measurements behind each choice are in the README and benchmarks/style_modes.py.
"""

from dataclasses import asdict, dataclass, field

STYLE_LAYERS = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]


@dataclass
class OptimiseConfig:
    """The optimisation mode: the photo itself updated by gradient descent on the content and style costs."""

    steps: int = 200
    content_weight: float = 1e4  # alpha, the TF tutorial's
    # beta: the tutorial's 1e-2 left the photo almost unstyled on our VGG16; 1 reaches a lower Gram style loss than
    # the arbitrary network on 6 of 6 paintings with the photo kept (benchmarks/style_modes.py).
    style_weight: float = 1.0
    tv_weight: float = 1.0  # the tutorial's 30 blurred the photo
    content_layer: str = "block5_conv2"
    style_layers: list = field(default_factory=lambda: list(STYLE_LAYERS))
    weights: str = "hed"
    init: str = "content"
    optimizer: str = "adam"
    strength: float = 1.0

    def to_dict(self):
        return asdict(self)


@dataclass
class StyleTrainConfig:
    """`dlapps style train`: a fast network for one painting (Johnson et al. 2016), lighter than theirs."""

    epochs: int = 2
    batch_size: int = 4  # Johnson et al.'s
    image_size: int = 256
    style_size: int = 384
    learning_rate: float = 1e-3  # Johnson et al.'s
    content_weight: float = 1.0
    style_weight: float = 1e-2
    tv_weight: float = 10.0
    # 5x fewer multiply-adds than Johnson et al.'s 32-64-128 with 5 blocks, 0.11-0.17 s a 512 px photo on 2 cores
    # against 0.36 s, as low a style loss on two of three styles (model card).
    filters: list = field(default_factory=lambda: [16, 32, 64])
    residual_blocks: int = 3
    weights: str = "hed"
    seed: int = 0

    def to_dict(self):
        return asdict(self)
