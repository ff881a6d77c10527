"""The cat classifier's own logic, without the command line."""

import numpy as np
import pytest

from apps.cat_classifier.app import bias_variance_readout


def test_bias_variance_readout_prescribes_like_the_course():
    high_bias = bias_variance_readout(train_error=0.20, dev_error=0.22)
    assert high_bias["diagnosis"] == "high bias" and high_bias["avoidable_bias"] == pytest.approx(0.20)
    high_variance = bias_variance_readout(train_error=0.01, dev_error=0.15, test_error=0.16)
    assert high_variance["diagnosis"] == "high variance" and high_variance["variance"] == pytest.approx(0.14)
    assert any("regularisation" in advice for advice in high_variance["advice"])
    assert bias_variance_readout(0.0, 0.02, 0.10)["advice"][-1].startswith("test error well above dev")
    assert np.isclose(bias_variance_readout(0.02, 0.03)["variance"], 0.01)
