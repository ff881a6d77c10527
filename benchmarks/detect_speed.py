"""One-image latency of the detector as Keras, SavedModel, TFLite and ONNX Runtime, and NMS time for 10,000 boxes.

    python benchmarks/detect_speed.py --model saved_models/object_detector --image examples/raccoon.jpg

Every runtime gets the same uint8 image and runs letterbox + network + decoding + NMS (the exported graphs hold all
of it); the median of `--runs` calls after `--warmup` is reported, with the largest box difference to Keras.
NMS: `tf.image.non_max_suppression` vs OpenCV's `cv2.dnn.NMSBoxes` on the same 10,000 random boxes and scores.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from timing import median_ms  # benchmarks/timing.py, beside this script


def export(model, fmt, path):
    command = ["dlapps", "detect", "export", "--model", str(model), "--format", fmt, "--output", str(path), "--json"]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode:
        return completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "failed"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("runs/detect_speed.json"))
    args = parser.parse_args()

    import tensorflow as tf

    from dlapps.apps.object_detector.app import load_detector, run_detector
    from dlapps.data.images import read_image

    image = read_image(args.image)
    options = argparse.Namespace(
        model=args.model, score_threshold=None, iou_threshold=None, max_detections=None, class_agnostic=False
    )
    detector, _ = load_detector(options)
    reference = run_detector(detector, image)
    results = {
        "image": str(args.image),
        "size": list(image.shape[:2]),
        "threads": tf.config.threading.get_intra_op_parallelism_threads(),
    }
    results["keras_ms"] = median_ms(lambda: detector.detect(image[None]), args.runs, args.warmup)

    def difference(boxes):
        count = min(len(boxes), len(reference[0]))
        return float(np.max(np.abs(boxes[:count] - reference[0][:count]))) if count else 0.0

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for fmt, name in (("saved_model", "sm"), ("tflite", "detector.tflite"), ("onnx", "detector.onnx")):
            error = export(args.model, fmt, folder / name)
            if error:
                results[f"{fmt}_error"] = error
                continue
            if fmt == "saved_model":
                serve = tf.saved_model.load(str(folder / name)).signatures["serve"]
                call = lambda serve=serve: serve(images=tf.constant(image[None]))  # noqa: E731
                out = call()
                boxes = out["boxes"][0, : int(out["num_detections"][0])].numpy()
            elif fmt == "tflite":
                # The TFLite file takes the letterboxed canvas (its antialiased resize is not a TFLite op): the
                # letterbox is timed with it, and boxes are mapped back to image pixels.
                from dlapps.tasks.yolo_detector import letterbox

                interpreter = tf.lite.Interpreter(str(folder / name))
                runner = interpreter.get_signature_runner()

                def call(runner=runner):
                    canvas, scale, pad = letterbox(image[None], detector.image_size)
                    out = runner(canvas=canvas.numpy())
                    out["boxes"] = (out["boxes"] - np.tile(pad.numpy(), 2)) / float(scale)
                    return out

                try:
                    out = call()
                except Exception as exception:  # noqa: BLE001 (reported, not hidden)
                    results["tflite_error"] = str(exception).splitlines()[0]
                    continue
                boxes = out["boxes"][0, : int(out["num_detections"][0])]
            else:
                import onnxruntime

                from dlapps.tasks.yolo_detector import letterbox

                try:
                    session = onnxruntime.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
                except Exception as exception:  # noqa: BLE001 (reported, not hidden)
                    results["onnx_error"] = str(exception).splitlines()[0][:300]
                    continue
                input_name = session.get_inputs()[0].name
                names = [o.name for o in session.get_outputs()]

                def call(session=session, input_name=input_name, names=names):
                    canvas, scale, pad = letterbox(image[None], detector.image_size)
                    out = dict(zip(names, session.run(None, {input_name: canvas.numpy()}), strict=True))
                    key = next(n for n in names if "boxes" in n)
                    out["boxes"] = (out[key] - np.tile(pad.numpy(), 2)) / float(scale)
                    out["count"] = out[next(n for n in names if "num_detections" in n)]
                    return out

                out = call()
                boxes = out["boxes"][0, : int(out["count"][0])]
            results[f"{fmt}_ms"] = median_ms(call, args.runs, args.warmup)
            results[f"{fmt}_max_box_difference_px"] = difference(boxes)

    # NMS on 10,000 candidate boxes: tf.image vs OpenCV.
    import cv2

    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 600, (10000, 2)).astype(np.float32)
    sizes = rng.uniform(10, 120, (10000, 2)).astype(np.float32)
    scores = rng.uniform(0, 1, 10000).astype(np.float32)
    yxyx = tf.constant(np.concatenate([corners[:, ::-1], (corners + sizes)[:, ::-1]], 1))
    tf_scores = tf.constant(scores)
    # OpenCV has no cap on the number kept (its top_k caps the candidates before NMS), so both run to the end for
    # the comparison; tf.image with the model's cap of 100 boxes stops as soon as it has them.
    tf_nms = lambda n=10000: tf.image.non_max_suppression(yxyx, tf_scores, n, 0.5, 0.25)  # noqa: E731
    xywh = np.concatenate([corners, sizes], 1).tolist()
    cv_nms = lambda: cv2.dnn.NMSBoxes(xywh, scores.tolist(), 0.25, 0.5)  # noqa: E731
    results["nms_10000_tf_image_ms"] = median_ms(tf_nms, args.runs, args.warmup)
    results["nms_10000_opencv_ms"] = median_ms(cv_nms, args.runs, args.warmup)
    results["nms_10000_tf_image_first_100_ms"] = median_ms(lambda: tf_nms(100), args.runs, args.warmup)
    results["nms_same_boxes"] = tf_nms().numpy().tolist() == np.asarray(cv_nms()).reshape(-1).tolist()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
