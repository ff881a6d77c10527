"""Classification metrics in NumPy: accuracy, precision/recall/F1, ROC AUC, confusion matrix."""

import numpy as np


def confusion_matrix(labels, predictions, num_classes):
    """Counts[i, j] = number of examples of true class i predicted as class j."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return matrix


def roc_auc(labels, scores):
    """Area under the ROC curve by the rank statistic (Mann-Whitney U), with ties counted half."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives, negatives = scores[labels], scores[~labels]
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([positives, negatives]), kind="mergesort")
    ranks = np.empty(len(order), dtype=np.float64)
    ranks[order] = np.arange(1, len(order) + 1)
    # Average the ranks of tied scores.
    all_scores = np.concatenate([positives, negatives])
    for value in np.unique(all_scores):
        tied = all_scores == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2
    return float(u / (len(positives) * len(negatives)))


def per_class_metrics(matrix, class_names):
    """Precision, recall, F1 and support per class from a confusion matrix."""
    result = {}
    for index, name in enumerate(class_names):
        true_positive = matrix[index, index]
        predicted = matrix[:, index].sum()
        actual = matrix[index, :].sum()
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    return result


def binary_classification_metrics(labels, probabilities, threshold=0.5):
    """Accuracy, balanced accuracy (mean of the two recalls), precision, recall, F1 (of the positive class 1), ROC AUC
    and the confusion matrix."""
    labels = np.asarray(labels).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predictions = (probabilities >= threshold).astype(np.int64)
    matrix = confusion_matrix(labels, predictions, 2)
    positive = per_class_metrics(matrix, ["negative", "positive"])["positive"]
    return {
        "accuracy": float(np.mean(predictions == labels)) if len(labels) else float("nan"),
        "balanced_accuracy": float(np.mean([matrix[c, c] / matrix[c].sum() for c in (0, 1) if matrix[c].sum()]))
        if len(labels)
        else float("nan"),
        "precision": positive["precision"],
        "recall": positive["recall"],
        "f1": positive["f1"],
        "roc_auc": roc_auc(labels, probabilities),
        "confusion_matrix": matrix.tolist(),
        "threshold": float(threshold),
        "num_examples": int(len(labels)),
    }


def multiclass_metrics(labels, probabilities, class_names):
    """Accuracy, macro F1, per-class precision/recall/F1 and the confusion matrix of a softmax classifier."""
    labels = np.asarray(labels).astype(np.int64)
    predictions = np.argmax(probabilities, axis=1)
    matrix = confusion_matrix(labels, predictions, len(class_names))
    per_class = per_class_metrics(matrix, class_names)
    return {
        "accuracy": float(np.mean(predictions == labels)) if len(labels) else float("nan"),
        "macro_f1": float(np.mean([m["f1"] for m in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "num_examples": int(len(labels)),
    }
