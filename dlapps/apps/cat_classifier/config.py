"""Defaults of the cat classifier, next to the app that uses them.

The shipped model was trained with these (see saved_models/cat_classifier/MODEL_CARD.md for the command).
"""

from dataclasses import asdict, dataclass, field


@dataclass
class CatConfig:
    """Everything a training run needs; written to config.json beside the model."""

    model: str = "cnn"
    image_size: tuple = (64, 64)
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    lr_decay: str = "none"
    l2: float = 0.0
    dropout: float = 0.2
    batch_norm: bool = True
    hidden_units: tuple = (20, 7, 5)
    filters: tuple = (16, 32, 64)
    augment: bool = True
    patience: int = 10
    dev_fraction: float = 0.2
    seed: int = 1
    weights: str = "imagenet"
    backbone_image_size: int = 160
    # Transfer models: scale P(cat) by 1 - P(dog) under the backbone's own ImageNet head ("none": off).
    imagenet_veto: str = "dog"
    threshold: float = 0.5
    class_names: list = field(default_factory=lambda: ["non-cat", "cat"])

    def to_dict(self):
        return asdict(self)
