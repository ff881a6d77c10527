"""The cat classifier's own logic, without the command line."""

import numpy as np
import pytest

from dlapps.apps.cat_classifier.app import bias_variance_readout


def test_bias_variance_readout_prescribes_like_the_course():
    high_bias = bias_variance_readout(train_error=0.20, train_dev_error=0.22)
    assert high_bias["diagnosis"] == "high avoidable bias" and high_bias["avoidable_bias"] == pytest.approx(0.20)
    high_variance = bias_variance_readout(train_error=0.01, train_dev_error=0.15, dev_error=0.16, test_error=0.16)
    assert high_variance["diagnosis"] == "high variance" and high_variance["variance"] == pytest.approx(0.14)
    assert any("regularisation" in advice for advice in high_variance["advice"])
    assert np.isclose(bias_variance_readout(0.02, 0.03)["variance"], 0.01)
    assert bias_variance_readout(0.02, 0.03)["diagnosis"] == "no large gap"


def test_data_mismatch_is_named_when_dev_differs_from_train_dev():
    # The shipped model before the ImageNet veto: fits its data, fails on real photos.
    readout = bias_variance_readout(train_error=0.0, train_dev_error=0.024, dev_error=0.317, test_error=0.0)
    assert readout["diagnosis"] == "high data mismatch" and readout["data_mismatch"] == pytest.approx(0.293)
    assert any("error analysis" in advice for advice in readout["advice"])
    assert bias_variance_readout(0.0, 0.02, 0.03, 0.12)["diagnosis"] == "high overfitting to dev"


def test_deployed_veto_model_keeps_the_trained_head_and_base():
    from dlapps.apps.cat_classifier.app import build_cat_model, with_imagenet_veto
    from dlapps.apps.cat_classifier.config import CatConfig
    from dlapps.tasks.imagenet import IMAGENET_DOG_CLASSES

    config = CatConfig(model="transfer", image_size=(16, 16), backbone_image_size=32, weights="none")
    trained = build_cat_model(config)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    deployed = with_imagenet_veto(trained, config)
    assert config.image_size == (32, 32) and deployed.input_shape == (None, 32, 32, 3)
    features, imagenet = deployed.get_layer("efficientnet_lite0")(images)
    head = np.asarray(trained.get_layer("predictions")(trained.get_layer("efficientnet_lite0")(images)))
    dog = np.asarray(imagenet)[:, list(IMAGENET_DOG_CLASSES)].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(deployed(images)), head * (1 - dog), rtol=1e-5, atol=1e-6)
