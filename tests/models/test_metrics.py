import numpy as np

from dlapps.metrics.classification import binary_classification_metrics, confusion_matrix, multiclass_metrics, roc_auc


def test_roc_auc_exact_values():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5  # A tie counts half.
    assert roc_auc([0, 1, 1], [0.1, 0.9, 0.8]) == 1.0


def test_binary_metrics_by_hand():
    metrics = binary_classification_metrics([1, 1, 1, 0, 0], [0.9, 0.6, 0.2, 0.7, 0.1])
    assert metrics["confusion_matrix"] == [[1, 1], [1, 2]]
    assert metrics["accuracy"] == 0.6
    assert metrics["precision"] == 2 / 3 and metrics["recall"] == 2 / 3


def test_confusion_and_multiclass():
    assert confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2], 3).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 2]]
    probabilities = np.eye(3)[[0, 2, 2, 2]]
    metrics = multiclass_metrics([0, 1, 2, 2], probabilities, ["a", "b", "c"])
    assert metrics["accuracy"] == 0.75
    assert metrics["per_class"]["c"]["precision"] == 2 / 3 and metrics["per_class"]["b"]["recall"] == 0.0
