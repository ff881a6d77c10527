"""ImageNet helpers: the cat classes, and a layer that turns 1000-class probabilities into P(cat)."""

from pathlib import Path

import keras
from keras import ops

# ImageNet-1k classes that are domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian cat.
# Big cats (cougar 286 ... cheetah 293) are left out: the course's "cat" means a house cat.
IMAGENET_CAT_CLASSES = (281, 282, 283, 284, 285)
# ImageNet-1k classes that are dogs: 151 (Chihuahua) to 268 (Mexican hairless), the 118 breeds.
IMAGENET_DOG_CLASSES = tuple(range(151, 269))
# Groups of ImageNet classes a classifier can veto by name (`ImageNetVeto`).
IMAGENET_GROUPS = {"dog": IMAGENET_DOG_CLASSES, "cat": IMAGENET_CAT_CLASSES}


@keras.saving.register_keras_serializable(package="dlapps")
class CatProbability(keras.layers.Layer):
    """Sum of ImageNet softmax probabilities over the domestic-cat classes, shape (batch, 1)."""

    def call(self, probabilities):
        cat = ops.take(probabilities, list(IMAGENET_CAT_CLASSES), axis=-1)
        return ops.clip(ops.sum(cat, axis=-1, keepdims=True), 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def imagenet_class_names():
    """The 1,000 ImageNet-1k class names in index order (see dlapps/data/imagenet_labels.SOURCE.md)."""
    path = Path(__file__).resolve().parent.parent / "data" / "imagenet_labels.txt"
    return path.read_text().split()


@keras.saving.register_keras_serializable(package="dlapps")
class ImageNetVeto(keras.layers.Layer):
    """P(class 1) times (1 - the ImageNet probability mass of a group of classes), shape (batch, 1).

    The course's remedy for data mismatch when the training set lacks what the real distribution holds: the cat
    classifier learnt from 209 web images with hardly any dogs, so its head calls many real dogs cats; the ImageNet
    head of the same backbone knows 118 dog breeds. With `group="dog"`, a photo ImageNet is sure shows a dog gets
    P(cat) near 0, and other images keep the trained head's answer.

    Args:
        group: a key of `IMAGENET_GROUPS` ("dog" or "cat").

    Call arguments: `[probability (batch, 1), imagenet_probabilities (batch, 1000)]`.
    """

    def __init__(self, group="dog", **kwargs):
        super().__init__(**kwargs)
        if group not in IMAGENET_GROUPS:
            raise ValueError(f"group must be one of {sorted(IMAGENET_GROUPS)}. Received: group={group}")
        self.group = group

    def call(self, inputs):
        probability, imagenet = inputs
        vetoed = ops.sum(ops.take(imagenet, list(IMAGENET_GROUPS[self.group]), axis=-1), axis=-1, keepdims=True)
        return probability * (1.0 - ops.clip(vetoed, 0.0, 1.0))

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {**super().get_config(), "group": self.group}
