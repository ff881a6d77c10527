"""`dlapps detect evaluate` (VOC/COCO mAP, the precision-recall plot) and `dlapps detect export` (SavedModel, ONNX,
TFLite, checked against the Keras model)."""

from pathlib import Path

import numpy as np

from dlapps.apps.object_detector.app import PROG, _read, _splits, load_detector, run_detector
from dlapps.cli.common import (
    ProgressBar,
    check_output_folder,
    counted,
    default_output,
    emit,
    say,
    to_json,
    warn,
)
from dlapps.data.images import ImageReadError, read_image
from dlapps.data.readers import DataError


def _trained_folder(folder, data):
    """The folder of the model's training (and dev) images that `folder` (resolved) is, lies in, or holds, or None.

    `data`: config.json's "data", the folder given to `train`. Of a set with its own splits, only its train and val
    splits were trained on (its test split was left out). A relative path (the shipped models') is tried from here and
    from the source tree's root (where they were trained)."""
    if not data:
        return None
    root = Path(__file__).resolve().parents[3]  # the checkout holding dlapps/
    for place in (Path(data), root / data):
        if place.is_dir():
            splits = _splits(place)
            for trained in [splits[key] for key in ("train", "val") if key in splits] or [place]:
                trained = trained.resolve()
                if folder == trained or trained in folder.parents or folder in trained.parents:
                    return trained
            return None
    return None


def evaluate(args):
    from dlapps.metrics.detection import coco_evaluate, match_detections, precision_recall
    from dlapps.plots import draw_detections, plot_gallery, plot_precision_recall

    if args.exported and not (Path(args.exported) / "saved_model.pb").is_file():  # before any work is done
        raise ValueError(f"--exported {args.exported}: not a SavedModel folder (`dlapps detect export --format "
                         "saved_model` writes one; TFLite and ONNX files take letterboxed canvases)")  # fmt: skip
    detector, config = load_detector(args)
    class_names = config["class_names"]
    data = args.data
    splits = _splits(args.data)
    part = "test" if "test" in splits else "val" if "val" in splits else None
    if part:  # a set with its own splits: its held-out part, never its training images
        data = splits[part]
        say(args, f"{args.data}: evaluating its {part} split, {data} (give that folder to choose another)")
    trained = _trained_folder(Path(data).resolve(), config.get("data"))
    if trained:
        warn(PROG, f"warning: {data} holds images this model was trained on ({trained}, dev included): its figures "
                   "are not a test of the model")  # fmt: skip
    records, _, _, _ = _read(data, class_names)
    seen = sorted({Path(r.image).name for r in records} & set(config.get("trained_images", ())))
    if seen and not trained:
        warn(PROG, f"warning: {counted(len(seen), 'image')} of {data} bear the names of this model's training (or "
                   f"dev) images, e.g. {seen[0]}: if they are the same photos, its figures are not a test of the "
                   "model")  # fmt: skip
    output = check_output_folder(args.output or default_output(args.model, "evaluate", "detect"))
    output.mkdir(parents=True, exist_ok=True)
    # mAP needs every box (a low score threshold); precision and recall use the chosen one.
    full = type(detector)(detector.model, detector.anchors, 0.001, detector.iou_threshold, 100, detector.class_agnostic)
    truths, ignored, detections, images, failures = [], [], [], [], 0
    progress = ProgressBar(len(records), "evaluating")
    for record in records:
        progress.update()
        try:
            image = read_image(record.image)
        except ImageReadError as error:
            warn(PROG, f"error: {error}")
            failures += 1
            continue
        truths.append((record.boxes, record.labels))
        # VOC "difficult" and COCO crowd objects: neither to find nor false when found (the VOC / COCO protocols).
        ignored.append((record.ignored_boxes, record.ignored_labels))
        detections.append(run_detector(full, image))
        images.append(record.image)
    if not truths:
        raise DataError(f"{args.data}: no readable image")
    measured = coco_evaluate(truths, detections, len(class_names), ignored=ignored)
    at = precision_recall(truths, detections, detector.score_threshold, ignored=ignored)
    result = {
        "data": str(data),
        "images": len(truths),
        "ignored_objects": sum(len(boxes) for boxes, _ in ignored),
        "training_names": len(seen),  # evaluated images bearing a training or dev image's name
        "map50": measured["map50"],
        "map": measured["map"],
        "map75": measured["map75"],
        "ap50_per_class": dict(zip(class_names, measured["ap50_per_class"], strict=True)),
        "ap_per_class": dict(zip(class_names, measured["ap_per_class"], strict=True)),
        "score_threshold": detector.score_threshold,
        "iou_threshold": detector.iou_threshold,
        **at,
    }
    plot_precision_recall(measured["precision50"], class_names, output / "precision_recall.png")
    written = ["metrics.json", "precision_recall.png"]
    (output / "worst_images.png").unlink(missing_ok=True)  # never a stale gallery from an earlier run

    # Worst images: most missed plus false boxes at the chosen threshold. Green: found, red: missed, magenta: false.
    kept = [
        (b[s >= detector.score_threshold], s[s >= detector.score_threshold], c[s >= detector.score_threshold])
        for b, s, c in detections
    ]
    matches = match_detections(truths, kept)
    errors = [int((~m).sum() + (~tp).sum()) for m, tp in matches]
    worst = [i for i in np.argsort(errors, kind="stable")[::-1][:12] if errors[i] > 0]
    pictures, captions = [], []
    for index in worst:
        (boxes, labels), (d_boxes, d_scores, d_classes), (matched, true_positive) = (
            truths[index],
            kept[index],
            matches[index],
        )
        colours = [(40, 180, 40) if tp else (200, 0, 200) for tp in true_positive] + [(220, 30, 30)] * int(
            (~matched).sum()
        )
        drawn = draw_detections(
            read_image(images[index]),
            np.concatenate([d_boxes.reshape(-1, 4), boxes[~matched].reshape(-1, 4)]),
            np.concatenate([d_classes, labels[~matched]]).astype(int),
            list(d_scores) + [None] * int((~matched).sum()) if len(d_scores) or (~matched).any() else None,
            class_names,
            colours,
        )
        pictures.append(drawn)
        captions.append(
            f"{Path(images[index]).name}: {int((~matched).sum())} missed, {int((~true_positive).sum())} false"
        )
    if pictures:
        plot_gallery(
            pictures,
            captions,
            output / "worst_images.png",
            "Worst images (green: found, magenta: false box, red: missed box)",
            columns=4,
        )
    if args.exported:
        result["exported"] = _compare_exported(args.exported, images, detector)
    result["output"] = str(output)
    if pictures:
        written.append("worst_images.png")
    result["files"] = sorted(written)
    (output / "metrics.json").write_text(to_json(result, indent=2) + "\n")
    per_class = ", ".join(f"{k} {v:.3f}" for k, v in result["ap50_per_class"].items() if v is not None)
    emit(
        args,
        result,
        f"{len(truths)} images: mAP@0.5 {result['map50']:.3f}, mAP@0.5:0.95 {result['map']:.3f} (pycocotools)"
        + (f"; {result['ignored_objects']} difficult or crowd object(s) ignored" if result["ignored_objects"] else "")
        + "\n"
        f"AP@0.5 per class: {per_class}\nat score >= {detector.score_threshold:.2f}: precision {at['precision']:.3f}, "
        f"recall {at['recall']:.3f} ({at['true_positives']} found, {at['false_positives']} false, {at['missed']} "
        f"missed)\n{_exported_line(args.exported, result.get('exported'))}wrote {output}/: "
        f"{', '.join(result['files'])}",
    )
    return 2 if failures else None


def _exported_line(path, compared):
    """The summary's line on the exported SavedModel against Keras ('' without --exported)."""
    if not compared:
        return ""
    if not compared["same_counts"]:
        return f"exported {path}: a different number of boxes than the Keras model on some of the images\n"
    return (
        f"exported {path}: the same boxes as the Keras model on {compared['images']} images (at most "
        f"{compared['max_box_difference_px']:.2g} px and {compared['max_score_difference']:.2g} in score apart)\n"
    )


def _compare_exported(path, images, detector):
    """Largest box and score difference between the exported SavedModel's serve_bytes and Keras, over `images`."""
    import tensorflow as tf

    exported = tf.saved_model.load(str(path))
    box_difference = score_difference = 0.0
    for image_path in images:
        found = exported.signatures["serve_bytes"](image_bytes=tf.constant([Path(image_path).read_bytes()]))
        boxes, scores, _ = run_detector(detector, read_image(image_path))
        count = int(found["num_detections"][0])
        if count != len(scores):
            return {"images": len(images), "same_counts": False}
        if count:
            box_difference = max(box_difference, float(np.max(np.abs(found["boxes"][0, :count].numpy() - boxes))))
            score_difference = max(score_difference, float(np.max(np.abs(found["scores"][0, :count].numpy() - scores))))
    return {
        "images": len(images),
        "same_counts": True,
        "max_box_difference_px": box_difference,
        "max_score_difference": score_difference,
    }


def export(args):
    import tensorflow as tf

    from dlapps.data.images import decode_image_bytes
    from dlapps.export import export_graph, path_size
    from dlapps.tasks.yolo_detector import postprocess

    detector, config = load_detector(args)
    default_name = {"saved_model": "detector_saved_model", "tflite": "detector.tflite", "onnx": "detector.onnx"}
    output = check_output_folder(
        args.output or default_output(args.model, "export", "detect") / default_name[args.format]
    )
    output.parent.mkdir(parents=True, exist_ok=True)

    @tf.function(input_signature=[tf.TensorSpec((1,), tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        image = decode_image_bytes(image_bytes[0])
        return detector.detect(image[None])

    info = {
        "class_names": config["class_names"],
        "input": "uint8 RGB (N, H, W, 3), any size (one per batch)",
        "outputs": "boxes (N, M, 4) xmin ymin xmax ymax in input pixels; scores; classes; num_detections",
        "score_threshold": detector.score_threshold,
        "iou_threshold": detector.iou_threshold,
        "max_detections": detector.max_detections,
    }
    detector.serve_bytes = serve_bytes
    serve = detector.detect
    if args.format in ("tflite", "onnx"):
        # The letterbox's antialiased resize (ScaleAndTranslate) is neither a TFLite, a Flex nor an ONNX op (tf2onnx
        # writes it, ONNX Runtime refuses the graph): these files take the letterboxed canvas
        # (dlapps.tasks.yolo_detector.letterbox) and return boxes in canvas pixels. NMS is inside, with TFLite builtin
        # ops only (see nms_one_image), so any TFLite runtime runs the file.
        size = detector.image_size

        @tf.function(input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32, name="canvas")])
        def serve(canvas):
            found = postprocess(detector.model(canvas, training=False), detector.anchors, detector.score_threshold,
                                detector.iou_threshold, detector.max_detections, detector.class_agnostic)  # fmt: skip
            return {**found, "boxes": tf.clip_by_value(found["boxes"] * size, 0.0, float(size))}

        info["input"] = f"float32 (1, {size}, {size}, 3) 0-255: the image letterboxed (fitted, centred on grey 127)"
        info["outputs"] = (
            "boxes (1, M, 4) xmin ymin xmax ymax in canvas pixels (image pixels: subtract the "
            "letterbox offset, divide by its scale, clip to the image); scores; classes; num_detections"
        )
    export_graph(detector, serve, serve_bytes, output, args.format, info)
    result = {"format": args.format, "path": str(output), "bytes": path_size(output)}
    emit(args, result, f"wrote {output} ({result['bytes'] / 1e6:.1f} MB)")
