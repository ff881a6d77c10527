"""Detection measures: IoU, anchor boxes by k-means, and mAP by pycocotools.

Boxes are `xmin, ymin, xmax, ymax` (any unit, the same for both arguments) unless a name says otherwise.
"""

import contextlib
import io

import numpy as np


def box_iou(boxes_a, boxes_b):
    """Pairwise IoU: float64 (N, M) for boxes_a (N, 4) and boxes_b (M, 4) in xyxy. Empty boxes give 0."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def shape_iou(sizes_a, sizes_b):
    """IoU of (width, height) pairs placed on one centre: float64 (N, M). YOLOv2's distance is 1 - this."""
    a = np.asarray(sizes_a, np.float64).reshape(-1, 2)
    b = np.asarray(sizes_b, np.float64).reshape(-1, 2)
    intersection = np.prod(np.minimum(a[:, None], b[None]), axis=2)
    return intersection / (np.prod(a, 1)[:, None] + np.prod(b, 1)[None] - intersection)


def kmeans_anchors(sizes, k, seed=0, iterations=300):
    """Anchor boxes by k-means with the 1 - IoU distance (Redmon & Farhadi, YOLO9000, "dimension clusters").

    Args:
        sizes: float (N, 2) box widths and heights (any unit; N >= k).
        k: number of anchors.
    Returns:
        (anchors float64 (k, 2) sorted by area, mean IoU of each box with its best anchor).
    Centres start by k-means++ on the same distance; each centre moves to the median of its cluster (as in
    darknet's gen_anchors, robust to outliers); an empty cluster keeps its centre.
    """
    sizes = np.asarray(sizes, np.float64).reshape(-1, 2)
    if len(sizes) < k:
        raise ValueError(f"k-means needs at least k={k} boxes. Received: {len(sizes)} boxes")
    rng = np.random.default_rng(seed)
    centres = [sizes[rng.integers(len(sizes))]]
    for _ in range(1, k):
        distance = np.min(1 - shape_iou(sizes, np.array(centres)), axis=1)
        weights = distance**2
        total = weights.sum()
        centres.append(
            sizes[rng.choice(len(sizes), p=weights / total)] if total > 0 else sizes[rng.integers(len(sizes))]
        )
    centres = np.array(centres)
    assignment = None
    for _ in range(iterations):
        new_assignment = np.argmax(shape_iou(sizes, centres), axis=1)
        if assignment is not None and np.array_equal(new_assignment, assignment):
            break
        assignment = new_assignment
        for index in range(k):
            members = sizes[assignment == index]
            if len(members):
                centres[index] = np.median(members, axis=0)
    centres = centres[np.argsort(np.prod(centres, axis=1))]
    return centres, float(np.mean(np.max(shape_iou(sizes, centres), axis=1)))


def coco_evaluate(truths, detections, num_classes, ignored=None):
    """mAP with pycocotools: the COCO protocol (101-point interpolation, areas "all", up to 100 detections).

    Args:
        truths: per image, (boxes float (N, 4) xyxy pixels, labels int (N,)).
        detections: per image, (boxes (M, 4) xyxy pixels, scores (M,), labels (M,)).
        num_classes: classes are 0 .. num_classes - 1.
        ignored: optional, per image, (boxes (K, 4) xyxy pixels, labels (K,)) of ground truths not to count (VOC
            "difficult", COCO crowd): given to pycocotools with `iscrowd=1`, so they are no positives and a
            detection matching one is neither a true nor a false positive.
    Returns:
        dict: "map" (mAP@0.5:0.95), "map50" (mAP@0.5), "map75", "ap50_per_class" and "ap_per_class" (lists; None
        for a class with no ground truth), "precision50" (float (101, num_classes): precision at each recall
        0, 0.01, ..., 1 at IoU 0.5; -1 where undefined).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    ignored = ignored if ignored is not None else [(np.zeros((0, 4)), np.zeros((0,), int))] * len(truths)
    pairs = zip(truths, ignored, detections, strict=True)
    for image_id, ((boxes, labels), (i_boxes, i_labels), (d_boxes, d_scores, d_labels)) in enumerate(pairs):
        images.append({"id": image_id, "width": 1, "height": 1})
        for crowd, (some_boxes, some_labels) in enumerate(((boxes, labels), (i_boxes, i_labels))):
            for box, label in zip(np.reshape(some_boxes, (-1, 4)), some_labels, strict=True):
                x1, y1, x2, y2 = (float(v) for v in box)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": int(label),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": crowd,
                    }
                )
        for box, score, label in zip(np.reshape(d_boxes, (-1, 4)), d_scores, d_labels, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    empty = {
        "map": 0.0,
        "map50": 0.0,
        "map75": 0.0,
        "ap50_per_class": [None] * num_classes,
        "ap_per_class": [None] * num_classes,
        "precision50": -np.ones((101, num_classes)),
    }
    present = {a["category_id"] for a in annotations if not a["iscrowd"]}
    if not present:  # No positive anywhere (ignored ground truths alone count for nothing).
        return empty
    if not results:
        empty["ap50_per_class"] = [0.0 if c in present else None for c in range(num_classes)]
        empty["ap_per_class"] = list(empty["ap50_per_class"])
        return empty
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress.
        ground_truth = COCO()
        ground_truth.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c} for c in range(num_classes)],
        }
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        evaluation.params.catIds = list(range(num_classes))
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"][:, :, :, 0, -1]  # (IoU thresholds, recall points, classes)

    def mean_valid(values):
        values = values[values > -1]
        return float(np.mean(values)) if values.size else None

    ap50 = [mean_valid(precision[0, :, c]) for c in range(num_classes)]
    ap = [mean_valid(precision[:, :, c]) for c in range(num_classes)]
    return {
        "map": float(evaluation.stats[0]),
        "map50": float(evaluation.stats[1]),
        "map75": float(evaluation.stats[2]),
        "ap50_per_class": ap50,
        "ap_per_class": ap,
        "precision50": precision[0],
    }


def match_detections(truths, detections, iou_threshold=0.5):
    """Greedy matching (highest score first) per image and class, as VOC counts true and false positives.

    Returns per image: (matched_truth bool (N,), true_positive bool (M,)).
    """
    matches = []
    for (boxes, labels), (d_boxes, d_scores, d_labels) in zip(truths, detections, strict=True):
        labels, d_labels = np.asarray(labels), np.asarray(d_labels)
        matched = np.zeros(len(labels), bool)
        true_positive = np.zeros(len(d_labels), bool)
        ious = box_iou(d_boxes, boxes)
        for index in np.argsort(-np.asarray(d_scores), kind="stable"):
            candidates = np.where((labels == d_labels[index]) & ~matched)[0]
            if candidates.size:
                best = candidates[np.argmax(ious[index, candidates])]
                if ious[index, best] >= iou_threshold:
                    matched[best] = True
                    true_positive[index] = True
        matches.append((matched, true_positive))
    return matches


def _on_ignored(detections, ignored, true_positive, iou_threshold):
    """bool (M,): detections that are no true positive but match an ignored ground truth of their class."""
    boxes, _, labels = detections
    i_boxes, i_labels = ignored
    same_class = np.asarray(labels)[:, None] == np.asarray(i_labels)[None, :]
    matching = np.any((box_iou(boxes, i_boxes) >= iou_threshold) & same_class, axis=1)
    return matching & ~true_positive


def precision_recall(truths, detections, score_threshold, iou_threshold=0.5, ignored=None):
    """Precision and recall of the detections scoring at least `score_threshold` (matched at `iou_threshold`).

    `ignored`: optional, per image, (boxes, labels) of ground truths not to count (VOC difficult, COCO crowd): a
    detection that matches one (and no counted ground truth) is neither a true nor a false positive.
    """
    kept = [
        (b[s >= score_threshold], s[s >= score_threshold], c[s >= score_threshold])
        for b, s, c in ((np.reshape(b, (-1, 4)), np.asarray(s), np.asarray(c)) for b, s, c in detections)
    ]
    matches = match_detections(truths, kept, iou_threshold)
    true_positives = sum(int(tp.sum()) for _, tp in matches)
    predicted = sum(len(tp) for _, tp in matches)
    if ignored is not None:
        pairs = zip(kept, ignored, matches, strict=True)
        predicted -= sum(int(_on_ignored(d, i, tp, iou_threshold).sum()) for d, i, (_, tp) in pairs)
    actual = sum(len(m) for m, _ in matches)
    return {
        "precision": true_positives / predicted if predicted else 0.0,
        "recall": true_positives / actual if actual else 0.0,
        "true_positives": true_positives,
        "false_positives": predicted - true_positives,
        "missed": actual - true_positives,
    }


def best_f1_threshold(truths, detections, default=0.5, ignored=None):
    """The score threshold (0.05, 0.10, ..., 0.95) with the best F1 at IoU 0.5, e.g. on dev; returns (threshold,
    `precision_recall` there with "f1"). `default` when nothing is ever found. `ignored` as `precision_recall`."""
    best = (default, {"f1": -1.0})
    for threshold in np.round(np.arange(0.05, 0.96, 0.05), 2):
        result = precision_recall(truths, detections, threshold, ignored=ignored)
        total = result["precision"] + result["recall"]
        result["f1"] = 2 * result["precision"] * result["recall"] / total if total else 0.0
        if result["f1"] > best[1]["f1"]:
            best = (float(threshold), result)
    return best
