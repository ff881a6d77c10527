"""ImageNet helpers: the cat classes, and a layer that turns 1000-class probabilities into P(cat)."""

from pathlib import Path

import keras
from keras import ops

# ImageNet-1k classes that are domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian cat.
# Big cats (cougar 286 ... cheetah 293) are left out: the course's "cat" means a house cat.
IMAGENET_CAT_CLASSES = (281, 282, 283, 284, 285)


@keras.saving.register_keras_serializable(package="dlapps")
class CatProbability(keras.layers.Layer):
    """Sum of ImageNet softmax probabilities over the domestic-cat classes, shape (batch, 1)."""

    def call(self, probabilities):
        cat = ops.take(probabilities, list(IMAGENET_CAT_CLASSES), axis=-1)
        return ops.clip(ops.sum(cat, axis=-1, keepdims=True), 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def imagenet_class_names():
    """The 1,000 ImageNet-1k class names in index order (see models/data/imagenet_labels.SOURCE.md)."""
    path = Path(__file__).resolve().parent.parent / "data" / "imagenet_labels.txt"
    return path.read_text().split()
