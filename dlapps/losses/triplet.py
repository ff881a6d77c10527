"""Triplet losses for embeddings: the course's explicit form, and online mining over a batch (FaceNet).

Distances are squared Euclidean, as in the course and in FaceNet (Schroff et al., 2015, "FaceNet: A Unified Embedding
for Face Recognition and Clustering"): L = max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + margin, 0).
Keras and TensorFlow ship no triplet loss (TensorFlow Addons, which had one, is end-of-life), so it is written here.
"""

import keras
from keras import ops


def triplet_loss(anchor, positive, negative, margin=0.2):
    """The course's triplet loss on explicit triplets, summed over the batch.

    Args:
        anchor, positive, negative: float tensors of shape (batch, dim): embeddings of an image, another image of
            the same person, and an image of another person.
        margin: alpha, how much farther the negative must be than the positive (in squared distance).

    Returns:
        A scalar: sum over the batch of max(||a - p||^2 - ||a - n||^2 + margin, 0).
    """
    positive_distance = ops.sum(ops.square(anchor - positive), axis=-1)
    negative_distance = ops.sum(ops.square(anchor - negative), axis=-1)
    return ops.sum(ops.maximum(positive_distance - negative_distance + margin, 0.0))


def pairwise_squared_distances(embeddings):
    """(batch, dim) float embeddings to the (batch, batch) matrix of squared Euclidean distances (>= 0)."""
    squared_norms = ops.sum(ops.square(embeddings), axis=-1)
    distances = squared_norms[:, None] - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings)) + squared_norms[None]
    return ops.maximum(distances, 0.0)


@keras.saving.register_keras_serializable(package="dlapps")
class TripletLoss(keras.losses.Loss):
    """Triplet loss with online mining over a batch of P people x K images (FaceNet's recipe).

    `y_true` holds integer identity labels of shape (batch,) or (batch, 1); `y_pred` the embeddings (batch, dim).

    Args:
        margin: alpha, in squared distance (0.2 as the course and FaceNet use, for L2-normalised embeddings).
        mining: `"batch_hard"`: for each anchor, its farthest positive and its nearest negative in the batch
            (Hermans et al., 2017, "In Defense of the Triplet Loss"). `"semi_hard"`: every anchor-positive pair,
            with the nearest negative that is still farther than the positive, or the farthest negative when there
            is none (FaceNet; the rule of TensorFlow Addons' `TripletSemiHardLoss`).

    Returns (when called): the mean loss over anchors (batch hard) or over anchor-positive pairs (semi hard).

    Raises:
        ValueError: an unknown `mining`.
    """

    def __init__(self, margin=0.2, mining="semi_hard", name="triplet_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if mining not in ("semi_hard", "batch_hard"):
            raise ValueError(f"mining must be 'semi_hard' or 'batch_hard'. Received: mining={mining}")
        self.margin, self.mining = float(margin), mining

    def call(self, y_true, y_pred):
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        embeddings = ops.cast(y_pred, "float32")
        distances = pairwise_squared_distances(embeddings)
        same = ops.equal(labels[:, None], labels[None, :])
        not_self = ops.logical_not(ops.eye(ops.shape(labels)[0], dtype="bool"))
        positive_mask = ops.logical_and(same, not_self)
        negative_mask = ops.logical_not(same)
        if self.mining == "batch_hard":
            hardest_positive = ops.max(ops.where(positive_mask, distances, 0.0), axis=1)
            big = ops.max(distances) + 1.0
            hardest_negative = ops.min(ops.where(negative_mask, distances, big), axis=1)
            losses = ops.maximum(hardest_positive - hardest_negative + self.margin, 0.0)
            valid = ops.logical_and(ops.any(positive_mask, axis=1), ops.any(negative_mask, axis=1))
        else:
            # For each pair (anchor a, positive p): negatives n with d(a, n) > d(a, p), the nearest of them.
            d_ap = distances[:, :, None]  # (anchor, positive, 1)
            d_an = distances[:, None, :]  # (anchor, 1, negative)
            outside = ops.logical_and(negative_mask[:, None, :], d_an > d_ap)
            big = ops.max(distances) + 1.0
            nearest_outside = ops.min(ops.where(outside, d_an, big), axis=2)
            farthest_negative = ops.max(ops.where(negative_mask, distances, 0.0), axis=1)[:, None]
            negative = ops.where(ops.any(outside, axis=2), nearest_outside, farthest_negative)
            losses = ops.maximum(distances - negative + self.margin, 0.0)
            valid = ops.logical_and(positive_mask, ops.any(negative_mask, axis=1)[:, None])
        valid = ops.cast(valid, "float32")
        return ops.sum(losses * valid) / ops.maximum(ops.sum(valid), 1.0)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "mining": self.mining}
