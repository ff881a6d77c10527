"""CosFace, the large-margin cosine loss (Wang et al., 2018, "CosFace: Large Margin Cosine Loss for Deep Face
Recognition"): a softmax over identities on the cosines between a unit embedding and each identity's unit weight
vector, the true identity's cosine lowered by a margin first. `dlapps faces train --warmup-epochs` uses it to warm an
ImageNet backbone up on the training identities before triplet training. Keras ships neither the normalised
classifier nor the loss, so both are written here.
"""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="dlapps")
class CosineClassifier(layers.Layer):
    """(batch, dim) embeddings to (batch, classes) cosines with each class's weight vector (both L2-normalised, so
    the outputs are in [-1, 1]). The layer normalises its input too, so any embedding may come in."""

    def __init__(self, classes, **kwargs):
        super().__init__(**kwargs)
        self.classes = int(classes)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.classes), initializer="glorot_normal", name="kernel")

    def call(self, embeddings):
        return ops.matmul(ops.normalize(embeddings, axis=-1), ops.normalize(self.kernel, axis=0))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


@keras.saving.register_keras_serializable(package="dlapps")
class CosFaceLoss(keras.losses.Loss):
    """Mean over the batch of -log softmax(scale * (cos - margin * onehot))[true class].

    `y_true`: integer class labels, (batch,) or (batch, 1); `y_pred`: cosines (batch, classes) from
    `CosineClassifier`.

    Args:
        scale: s, the logits' scale (30, as is usual for a few thousand identities; the paper's 64 was for 10,000+).
        margin: m, subtracted from the true class's cosine (the paper's 0.35).
    """

    def __init__(self, scale=30.0, margin=0.35, name="cosface_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale, self.margin = float(scale), float(margin)

    def call(self, y_true, y_pred):
        onehot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), ops.shape(y_pred)[-1])
        logits = self.scale * (y_pred - self.margin * onehot)
        return keras.losses.categorical_crossentropy(onehot, logits, from_logits=True)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "margin": self.margin}
