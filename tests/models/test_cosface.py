"""CosFace: the normalised classifier and the large-margin cosine loss on hand-made numbers."""

import numpy as np
import pytest


def test_cosine_classifier_gives_the_cosines_between_embeddings_and_class_weights():
    from dlapps.losses.cosface import CosineClassifier

    layer = CosineClassifier(2)
    layer.build((None, 2))
    layer.kernel.assign(np.array([[3.0, 0.0], [0.0, -2.0]], np.float32))  # class 0 along x, class 1 along -y
    embeddings = np.array([[1.0, 0.0], [0.0, 5.0], [1.0, 1.0]], np.float32)  # any length: normalised inside
    half = 1 / np.sqrt(2)
    np.testing.assert_allclose(np.asarray(layer(embeddings)), [[1, 0], [0, -1], [half, -half]], atol=1e-6)


def test_cosface_loss_is_softmax_cross_entropy_on_the_scaled_cosines_less_the_margin():
    from dlapps.losses.cosface import CosFaceLoss

    cosines = np.array([[0.9, 0.1, -0.2], [0.3, 0.4, 0.5]], np.float32)
    labels = np.array([0, 2])
    # By hand, with s = 2 and m = 0.5: logits [1.8 - 1, 0.2, -0.4] and [0.6, 0.8, 1.0 - 1].
    logits = [[0.8, 0.2, -0.4], [0.6, 0.8, 0.0]]
    expected = np.mean([np.log(np.sum(np.exp(row))) - row[label] for row, label in zip(logits, labels, strict=True)])
    loss = CosFaceLoss(scale=2.0, margin=0.5)
    assert float(loss(labels, cosines)) == pytest.approx(expected, abs=1e-6)
    assert float(loss(labels[:, None], cosines)) == pytest.approx(expected, abs=1e-6)  # (batch, 1) labels too
    # Without a margin, it is Keras' sparse categorical cross-entropy on scale x cosine.
    import keras

    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, 2.0 * cosines)
    assert float(CosFaceLoss(scale=2.0, margin=0.0)(labels, cosines)) == pytest.approx(float(plain), abs=1e-6)
