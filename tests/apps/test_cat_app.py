"""The cat classifier's own logic, without the command line."""

import numpy as np
import pytest

from apps.cat_classifier.app import bias_variance_readout


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
