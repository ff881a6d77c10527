import numpy as np
import pytest

from models.metrics.verification import (
    accuracy_at,
    best_threshold,
    equal_error_rate,
    roc_auc,
    tar_at_far,
    ten_fold_accuracy,
)

DISTANCES = np.array([0.1, 0.2, 0.3, 0.5, 0.4, 0.6, 0.7, 0.8])
SAME = np.array([1, 1, 1, 1, 0, 0, 0, 0])


def test_auc_counts_the_closer_same_pairs():
    # 16 (same, different) pairs; only (0.5 same vs 0.4 different) is the wrong way round.
    assert roc_auc(DISTANCES, SAME) == pytest.approx(15 / 16)
    assert roc_auc([0.1, 0.1], [1, 0]) == pytest.approx(0.5)


def test_thresholds_accuracy_eer_and_tar():
    assert accuracy_at(DISTANCES, SAME, 0.35) == pytest.approx(7 / 8)
    assert accuracy_at(DISTANCES, SAME, 0.55) == pytest.approx(7 / 8)
    assert best_threshold(DISTANCES, SAME) in (pytest.approx(0.35), pytest.approx(0.55))
    eer, _ = equal_error_rate(DISTANCES, SAME)
    assert eer == pytest.approx(0.25)
    tar, threshold = tar_at_far(DISTANCES, SAME, far_target=0.0)
    assert tar == pytest.approx(0.75) and threshold == pytest.approx(0.3)


def test_ten_fold_accuracy_on_separable_pairs_is_perfect():
    rng = np.random.default_rng(0)
    same = np.arange(200) % 2
    distances = np.where(same == 1, rng.uniform(0, 0.4, 200), rng.uniform(0.6, 1.0, 200))
    mean, std = ten_fold_accuracy(distances, same)
    assert mean == 1.0 and std == 0.0
