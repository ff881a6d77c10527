"""`dlapps detect anchors` and `dlapps detect convert`: the annotation tools."""

from dlapps.apps.object_detector.app import _read, _splits, box_sizes
from dlapps.cli.common import (
    check_output_folder,
    emit,
    say,
)


def anchors(args):
    from dlapps.metrics.detection import kmeans_anchors

    if args.image_size % 32:
        raise ValueError(f"--image-size must be a multiple of 32 (as train's). Received: {args.image_size}")
    splits = _splits(args.data)
    if splits:  # as train fits them: on the training split only
        say(args, f"{args.data}: anchors of its train split, {splits['train']}")
    records, _, _, _ = _read(splits.get("train", args.data))
    sizes = box_sizes(records)
    curve = []
    for k in range(1, min(args.max_k, len(sizes)) + 1):
        curve.append({"k": k, "mean_iou": kmeans_anchors(sizes, k)[1]})
    chosen, mean_iou = kmeans_anchors(sizes, args.k)
    pixels = (chosen * args.image_size).round(1).tolist()
    result = {
        "boxes": len(sizes),
        "k": args.k,
        "anchors": chosen.tolist(),
        "anchors_px": pixels,
        "mean_iou": mean_iou,
        "mean_iou_by_k": curve,
    }
    text = [f"{len(sizes)} boxes; mean best IoU with k anchors (k-means, distance 1 - IoU):"]
    text += [f"  k={row['k']:>2}: {row['mean_iou']:.3f}" for row in curve]
    text.append(f"{args.k} anchors (width x height, pixels of a {args.image_size} input, letterboxed):")
    text.append("  " + ", ".join(f"{w:g}x{h:g}" for w, h in pixels))
    emit(args, result, "\n".join(text))


def convert(args):
    from dlapps.data.annotations import write_annotations

    records, class_names, kind, boxes = _read(args.data)
    output = check_output_folder(args.output)
    written = write_annotations(records, class_names, output, args.to)
    result = {"from": kind, "to": args.to, "images": len(records), "boxes": boxes, "output": str(written)}
    emit(args, result, f"{len(records)} images, {boxes} boxes: {kind.upper()} -> {args.to.upper()} in {written}")
