"""Face-verification metrics from pair distances: ROC, AUC, EER, TAR at a FAR, and the LFW 10-fold accuracy.

A pair is (distance, same): `same` is 1 for two images of one person. "Same" is predicted when distance <= threshold.
TAR (true accept rate) is the share of same pairs accepted; FAR (false accept rate) the share of different pairs
accepted. The 10-fold protocol is LFW's (Huang et al., 2007): the threshold is chosen on nine folds and the accuracy
measured on the tenth.
"""

import numpy as np


def roc_curve(distances, same):
    """(far, tar, thresholds), one point per distinct distance, thresholds ascending (far and tar non-decreasing)."""
    distances, same = np.asarray(distances, np.float64), np.asarray(same).astype(bool)
    thresholds = np.unique(distances)
    order = np.sort(distances[same]), np.sort(distances[~same])
    tar = np.searchsorted(order[0], thresholds, side="right") / max(1, same.sum())
    far = np.searchsorted(order[1], thresholds, side="right") / max(1, (~same).sum())
    return np.concatenate([[0.0], far]), np.concatenate([[0.0], tar]), np.concatenate([[-np.inf], thresholds])


def roc_auc(distances, same):
    """Area under the ROC curve: the probability that a same pair is closer than a different pair (ties count 1/2)."""
    distances, same = np.asarray(distances, np.float64), np.asarray(same).astype(bool)
    positives, negatives = distances[same], distances[~same]
    if not len(positives) or not len(negatives):
        return float("nan")
    ranks = _ranks(np.concatenate([positives, negatives]))
    # Mann-Whitney U with "closer is more likely same": rank the negated distances.
    greater = ranks[len(positives) :].sum() - len(negatives) * (len(negatives) + 1) / 2
    return float(greater / (len(positives) * len(negatives)))


def _ranks(values):
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def accuracy_at(distances, same, threshold):
    """Share of pairs decided right with "same" when distance <= threshold."""
    distances, same = np.asarray(distances), np.asarray(same).astype(bool)
    return float(np.mean((distances <= threshold) == same))


def best_threshold(distances, same):
    """The threshold (midway between neighbouring distances) with the highest accuracy on these pairs."""
    values = np.unique(np.asarray(distances, np.float64))
    candidates = np.concatenate([[values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-6]])
    scores = [accuracy_at(distances, same, t) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def equal_error_rate(distances, same):
    """(eer, threshold): where the false accept rate equals the false reject rate (1 - TAR)."""
    far, tar, thresholds = roc_curve(distances, same)
    frr = 1.0 - tar
    index = int(np.argmin(np.abs(far - frr)))
    return float((far[index] + frr[index]) / 2), float(thresholds[index])


def tar_at_far(distances, same, far_target=1e-3):
    """The highest TAR whose FAR is at most `far_target`, and its threshold."""
    far, tar, thresholds = roc_curve(distances, same)
    allowed = far <= far_target
    index = int(np.flatnonzero(allowed)[np.argmax(tar[allowed])])
    return float(tar[index]), float(thresholds[index])


def ten_fold_accuracy(distances, same, folds=10, seed=0):
    """LFW's protocol: (mean, std) accuracy over folds, each with the threshold chosen on the other folds."""
    distances, same = np.asarray(distances, np.float64), np.asarray(same).astype(bool)
    order = np.random.default_rng(seed).permutation(len(distances))
    scores = []
    for fold in np.array_split(order, min(folds, len(order))):
        rest = np.setdiff1d(order, fold)
        threshold = best_threshold(distances[rest], same[rest])
        scores.append(accuracy_at(distances[fold], same[fold], threshold))
    return float(np.mean(scores)), float(np.std(scores))


MIN_PAIRS_10_FOLD = 40


def verification_report(distances, same, threshold):
    """Every figure `evaluate` prints, as a dict. Figures the pairs cannot measure are None: TAR at FAR 1e-3 below
    1,000 different-people pairs, the 10-fold accuracy below `MIN_PAIRS_10_FOLD` pairs."""
    eer, eer_threshold = equal_error_rate(distances, same)
    negatives = int(len(distances) - np.sum(same))
    # A FAR of 1e-3 needs 1,000 different-people pairs to be measured at all; 10 folds need a few pairs each.
    tar, tar_threshold = tar_at_far(distances, same, 1e-3) if negatives >= 1000 else (None, None)
    mean, std = ten_fold_accuracy(distances, same) if len(distances) >= MIN_PAIRS_10_FOLD else (None, None)
    return {
        "pairs": int(len(distances)),
        "same_pairs": int(np.sum(same)),
        "threshold": float(threshold),
        "accuracy_at_threshold": accuracy_at(distances, same, threshold),
        "accuracy_10_fold": mean,
        "accuracy_10_fold_std": std,
        "roc_auc": roc_auc(distances, same),
        "eer": eer,
        "eer_threshold": eer_threshold,
        "tar_at_far_1e-3": tar,
        "tar_at_far_1e-3_threshold": tar_threshold,
        "best_threshold": best_threshold(distances, same),
    }


def fit_confidence(distances, same):
    """(bias, slope) of P(same | distance) = sigmoid(bias + slope * distance): logistic regression of `same` on the
    pair distances by Newton's method (a tiny ridge keeps separable pairs finite)."""
    distances, same = np.asarray(distances, np.float64), np.asarray(same, np.float64)
    features = np.stack([np.ones_like(distances), distances], axis=1)
    weights = np.zeros(2)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-features @ weights))
        gradient = features.T @ (p - same)
        hessian = features.T @ (features * (p * (1 - p) + 1e-6)[:, None]) + 1e-3 * np.eye(2)
        weights -= np.linalg.solve(hessian, gradient)
    return float(weights[0]), float(weights[1])
