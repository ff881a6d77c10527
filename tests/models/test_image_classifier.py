import numpy as np
import pytest

from dlapps.tasks.image_classifier import build_image_classifier
from tests.helpers import assert_keras_round_trip


@pytest.mark.parametrize("architecture", ["logreg", "mlp", "cnn", "resnet"])
def test_ladder_builds_and_round_trips(architecture, tmp_path):
    model = build_image_classifier(architecture, image_size=(16, 16), filters=(4, 8), hidden_units=(5, 3), l2=1e-3)
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    outputs = np.asarray(model(images))
    assert outputs.shape == (2, 1) and np.all((outputs >= 0) & (outputs <= 1))
    assert_keras_round_trip(model, images, tmp_path)


def test_multiclass_head_is_softmax():
    model = build_image_classifier("cnn", image_size=(16, 16), num_classes=4, filters=(4,))
    outputs = np.asarray(model(np.zeros((3, 16, 16, 3), np.float32)))
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)


def test_transfer_model_has_a_frozen_base_ready(tmp_path):
    model = build_image_classifier("transfer", image_size=(32, 32), weights=None, backbone_image_size=(48, 48))
    assert model.get_layer("efficientnet_lite0").count_params() > 3_000_000
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    assert_keras_round_trip(model, images, tmp_path)


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="architecture must be one of"):
        build_image_classifier("vgg")
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_image_classifier("cnn", num_classes=1)


def test_one_training_step_reduces_loss():
    import keras

    from tests.helpers import tiny_images

    images, labels = tiny_images(16)
    model = build_image_classifier("logreg", image_size=(16, 16))
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    before = model.evaluate(images, labels, verbose=0)
    model.fit(images, labels, epochs=5, verbose=0)
    assert model.evaluate(images, labels, verbose=0) < before


def test_frozen_base_keeps_its_batch_norm_statistics():
    import keras

    from dlapps.tasks.image_classifier import find_backbone

    model = build_image_classifier("transfer", image_size=(32, 32), weights=None)
    base = find_backbone(model)
    base.trainable = False
    before = base.get_layer("stem_bn").moving_mean.numpy().copy()
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    model.fit(images, np.arange(8) % 2, epochs=1, verbose=0)
    np.testing.assert_array_equal(base.get_layer("stem_bn").moving_mean.numpy(), before)


def test_imagenet_veto_scales_the_probability_by_the_vetoed_mass():
    from dlapps.tasks.imagenet import IMAGENET_DOG_CLASSES, ImageNetVeto

    imagenet = np.zeros((3, 1000), np.float32)
    imagenet[0, 281] = 1.0  # A tabby: nothing vetoed.
    imagenet[1, IMAGENET_DOG_CLASSES[0]] = 0.5  # Half a Chihuahua, half a dalmatian.
    imagenet[1, IMAGENET_DOG_CLASSES[-1]] = 0.5
    imagenet[2, IMAGENET_DOG_CLASSES[10]] = 0.25
    imagenet[2, 500] = 0.75
    probability = np.array([[0.9], [0.9], [0.8]], np.float32)
    vetoed = np.asarray(ImageNetVeto("dog")([probability, imagenet]))
    np.testing.assert_allclose(vetoed, [[0.9], [0.0], [0.6]], atol=1e-6)
    with pytest.raises(ValueError, match="group must be one of"):
        ImageNetVeto("alpaca")


def test_transfer_with_veto_round_trips(tmp_path):
    model = build_image_classifier("transfer", image_size=(32, 32), imagenet_veto="dog", weights=None)
    assert model.output_shape == (None, 1) and model.get_layer("imagenet_veto").group == "dog"
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    assert_keras_round_trip(model, images, tmp_path)
