"""What limits a detector's fit: the decoding ceiling, and the model's boxes and objectness where targets are.

Usage: python benchmarks/detect_fit.py DATA [--model fruit] [--json]

1. The ceiling of decoding and NMS: each image's true boxes are encoded as training targets (`encode_targets`), turned
   into the raw outputs that decode to exactly those boxes, and sent through `postprocess` (decoding, NMS) and
   pycocotools. What this loses (below 1.0) no training can win back: boxes no anchor can hold, or touching objects
   that NMS at the model's IoU threshold merges.
2. The model at its positives: at every cell and anchor a box is assigned to, the IoU of the predicted box with that
   box and the predicted objectness (whose training target is that IoU). Low IoU: the box regression limits the fit;
   boxes near the truth with low objectness: fragments outrank whole objects in NMS and mAP's ranking.
3. The ranking: the model's own boxes (every cell, anchor and class scoring above 0.001) scored instead by their true
   IoU with the best truth of their class, then NMS and pycocotools. The gap between this and the model's own mAP is
   what a better score (objectness x class probability) could win without moving a single box. And how well the
   objectness ranks one truth's own positives: Spearman's correlation of objectness and IoU among the cells and
   anchors assigned to the same truth (truths with 4 or more), averaged.
Run it on the training folder (the fit) and on dev or test (generalisation). Images are letterboxed as in training
(no augmentation).
"""

import argparse
import json

import numpy as np
import tensorflow as tf
from scipy.stats import spearmanr

from dlapps.apps.object_detector.app import _read_quietly
from dlapps.data.detection import cache_images, letterboxed_set
from dlapps.inference import load_model_dir
from dlapps.metrics.detection import box_iou, coco_evaluate
from dlapps.presets import preset_dir, presets
from dlapps.tasks.yolo_detector import (
    box_iou_elementwise,
    candidates,
    decode_raw,
    encode_targets,
    nms_one_image,
    postprocess,
    split_anchors,
    xywh_to_xyxy,
)


def logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def raw_from_targets(target, anchors):
    """The raw head output (G, G, A, 5 + C) that `decode_raw` turns into `target`'s boxes, with objectness and the
    true class near 1 at positives and near 0 elsewhere."""
    grid = target.shape[0]
    raw = np.full(target.shape, -20.0, np.float32)
    for y, x, a in zip(*np.nonzero(target[..., 4] > 0), strict=True):
        cx, cy, w, h = target[y, x, a, :4]
        raw[y, x, a, 0] = logit((cx * grid - x + 0.5) / 2)
        raw[y, x, a, 1] = logit((cy * grid - y + 0.5) / 2)
        raw[y, x, a, 2] = logit(np.sqrt(w / anchors[a][0]) / 2)
        raw[y, x, a, 3] = logit(np.sqrt(h / anchors[a][1]) / 2)
        raw[y, x, a, 4] = 20.0
        raw[y, x, a, 5:] = np.where(target[y, x, a, 5:] > 0, 20.0, -20.0)
    return raw


def oracle_ranked(raws, anchors, truth_boxes, truth_labels, size, iou_threshold):
    """One image's detections from the model's own boxes with each (box, class) scored by its IoU with the best truth
    of that class (0 without one): the best ranking these boxes allow. Boxes in canvas pixels."""
    boxes, scores = (value[0].numpy() for value in candidates(raws, anchors))  # boxes 0-1 of the canvas
    quality = np.zeros_like(scores)
    for label in range(scores.shape[1]):
        scored, truths = scores[:, label] > 0.001, truth_boxes[truth_labels == label]
        if scored.any() and len(truths):
            quality[scored, label] = box_iou(boxes[scored] * size, truths).max(axis=1)
    found = nms_one_image(tf.constant(boxes), tf.constant(quality), 0.05, iou_threshold, 100)
    count = int(found["num_detections"])
    return tuple(found[key][:count].numpy() for key in ("boxes", "scores", "classes"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a detection data folder (VOC, YOLO or COCO)")
    parser.add_argument("--model", default="fruit", help="a detector folder or preset (fruit, raccoon)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = preset_dir(args.model, "detect") if args.model in presets("detect") else args.model
    model, config = load_model_dir(folder)
    anchors, size, names = np.asarray(config["anchors"], np.float32), config["image_size"], config["class_names"]
    records, _, _ = _read_quietly(args.data, names)
    cache = cache_images(records, size)
    canvases, truths, ignored = letterboxed_set(cache, range(len(cache.kept)), size)
    groups = split_anchors(anchors)
    ceiling, ious, objectness, own, oracle, truth_of = [], [], [], [], [], []
    for image, (canvas, (boxes, labels)) in enumerate(zip(canvases, truths, strict=True)):
        targets = [t.numpy() for t in encode_targets(boxes / size, labels.astype(np.int32), anchors, size, len(names))]
        raws = [tf.constant(raw_from_targets(t, g)[None]) for t, g in zip(targets, groups, strict=True)]
        found = postprocess(raws, anchors, 0.001, config["iou_threshold"], 100)
        count = int(found["num_detections"][0])
        kept, scores, classes = (found[k][0, :count].numpy() for k in ("boxes", "scores", "classes"))
        ceiling.append((kept * size, scores, classes))  # canvas pixels, as the truths
        outputs = model(canvas[None], training=False)
        found = postprocess(outputs, anchors, 0.001, config["iou_threshold"], 100)
        count = int(found["num_detections"][0])
        own.append(
            tuple(found[k][0, :count].numpy() * (size if k == "boxes" else 1) for k in ("boxes", "scores", "classes"))
        )
        ranked = oracle_ranked(outputs, anchors, boxes, labels, size, config["iou_threshold"])
        oracle.append((ranked[0] * size, ranked[1], ranked[2]))
        for target, raw, group in zip(targets, outputs, groups, strict=True):
            xy, wh, object_logits, _ = decode_raw(raw, group)
            positive = target[None, ..., 4] > 0
            iou = box_iou_elementwise(xywh_to_xyxy(xy, wh), xywh_to_xyxy(target[None, ..., :2], target[None, ..., 2:4]))
            ious += list(iou.numpy()[positive])
            objectness += list(tf.sigmoid(object_logits).numpy()[positive])
            truth_of += [(image, *np.round(box, 5)) for box in target[..., :4][positive[0]]]
    limit = coco_evaluate(truths, ceiling, len(names), ignored=ignored)
    model_map = coco_evaluate(truths, own, len(names), ignored=ignored)
    ranked_map = coco_evaluate(truths, oracle, len(names), ignored=ignored)
    ious, objectness = np.asarray(ious), np.asarray(objectness)
    groups_of = {}
    for index, key in enumerate(truth_of):
        groups_of.setdefault(key, []).append(index)
    rank_correlations = [spearmanr(objectness[g], ious[g]).statistic for g in groups_of.values() if len(g) >= 4]
    rank_correlation = float(np.nanmean(rank_correlations))
    result = {
        "data": args.data,
        "model": str(folder),
        "images": len(truths),
        "ceiling": {"map50": limit["map50"], "map75": limit["map75"], "map": limit["map"]},
        "model_map": {key: model_map[key] for key in ("map50", "map75", "map")},
        "ranked_by_true_iou": {key: ranked_map[key] for key in ("map50", "map75", "map")},
        "positives": int(len(ious)),
        "positive_iou": {"mean": float(ious.mean()), "median": float(np.median(ious))},
        "positive_objectness": {"mean": float(objectness.mean()), "median": float(np.median(objectness))},
        "objectness_minus_iou": float((objectness - np.maximum(ious, 0)).mean()),
        "objectness_iou_rank_correlation": rank_correlation,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.data}: {len(truths)} images, {len(ious)} assigned cells and anchors")
    print(f"ceiling of decoding + NMS: mAP@0.5 {limit['map50']:.3f}, @0.75 {limit['map75']:.3f}, "
          f"@0.5:0.95 {limit['map']:.3f}")  # fmt: skip
    print(f"the model: mAP@0.5 {model_map['map50']:.3f}, @0.75 {model_map['map75']:.3f}, @0.5:0.95 "
          f"{model_map['map']:.3f}; its own boxes ranked by their true IoU: mAP@0.5 {ranked_map['map50']:.3f}, "
          f"@0.75 {ranked_map['map75']:.3f}, @0.5:0.95 {ranked_map['map']:.3f}")  # fmt: skip
    print(f"at the positives: predicted box IoU mean {ious.mean():.3f} (median {np.median(ious):.3f}); objectness "
          f"mean {objectness.mean():.3f} (median {np.median(objectness):.3f}), its target being the IoU")  # fmt: skip
    print(
        f"among one truth's positives, objectness ranks them by IoU with Spearman {rank_correlation:.3f} (1: "
        f"perfectly; 0: not at all), over {len(rank_correlations)} truths"
    )


if __name__ == "__main__":
    main()
