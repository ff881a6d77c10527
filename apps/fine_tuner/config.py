"""Defaults of the fine-tuner. The alpaca figures in the issue note were measured with these."""

from dataclasses import asdict, dataclass


@dataclass
class FineTuneConfig:
    """A fine-tuning run; written to config.json beside the model."""

    backbone: str = "efficientnet_lite0"
    weights: str = "imagenet"
    base: str = ""
    image_size: int = 224
    batch_size: int = 32
    head_epochs: int = 10
    fine_tune_epochs: int = 10
    learning_rate: float = 1e-3
    fine_tune_from: str = ""
    fine_tune_fraction: float = 0.25
    dropout: float = 0.2
    class_weights: bool = True
    augment: bool = True
    patience: int = 4
    dev_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 42
    strategy: str = "default"
    mixed_precision: bool = False

    def to_dict(self):
        return asdict(self)
