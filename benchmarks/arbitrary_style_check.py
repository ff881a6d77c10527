"""The converted arbitrary style networks against ONNX Runtime, and their speed.

    python benchmarks/arbitrary_style_check.py [--reference tests/data/arbitrary_style_reference.npz] [--output DIR]

1. Agreement: Keras against ONNX Runtime on the de-quantised graph (the int8 weights as float, the activation
   quantisation removed: the same arithmetic as ours) and on the original int8 graph (its activation rounding), at
   384x384 and 1024x768, in grey levels (0-255).
2. Speed, one run: one photo at 512x512 and 1024x768 through Keras (the traced `StyleTransfer` path) against ONNX
   Runtime on the packaged int8 files (the reference).
3. `--reference FILE`: writes the small stored reference the test suite compares with (a 64x48 photo, a 256x256
   painting, ONNX Runtime's float-graph style vector and image).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
ROOT = Path(__file__).resolve().parent.parent


def free_size(model):
    """The graph with free image height and width (the files declare 256x256 and 384x384 inputs)."""
    graph = model.graph
    del graph.value_info[:]
    for tensor in list(graph.input) + list(graph.output):
        dims = tensor.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].dim_value > 1:
            dims[1].dim_param, dims[2].dim_param = "height", "width"
    return model


def float_graph(path):
    """The ONNX graph with int8 weights de-quantised into float initializers and every Quantize/Dequantize pair of
    the activations removed, with free image height and width."""
    import onnx
    from onnx import helper, numpy_helper

    from dlapps.backbones.magenta_style import OnnxWeights

    weights = OnnxWeights(path)
    model = onnx.load(str(path))
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    rename, kept, floats = {}, [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in initializers:
            floats.append(numpy_helper.from_array(weights.tensor(node.output[0]), node.output[0]))
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            rename[node.output[0]] = node.input[0]
        else:
            kept.append(node)

    def source(name):
        while name in rename:
            name = rename[name]
        return name

    for node in kept:
        for index, name in enumerate(node.input):
            node.input[index] = source(name)
    for output in graph.output:
        if source(output.name) != output.name:
            kept.append(helper.make_node("Identity", [source(output.name)], [output.name]))
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(floats)
    return free_size(model)


def sessions():
    import onnx
    import onnxruntime

    from dlapps.backbones.magenta_style import onnx_path

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # not a line per unused initializer
    made = {}
    for kind in ("predict", "transform"):
        path = onnx_path(kind)
        int8 = free_size(onnx.load(str(path))).SerializeToString()
        made[f"{kind}_int8"] = onnxruntime.InferenceSession(int8, options)
        made[f"{kind}_float"] = onnxruntime.InferenceSession(float_graph(path).SerializeToString(), options)
    return made


def run_onnx(made, kind, painting, photo):
    """(style vector (100,), image (H, W, 3) 0-1) of ONNX Runtime's `kind` graphs ("int8" or "float")."""
    vector = made[f"predict_{kind}"].run(None, {"style_image": painting[None]})[0].reshape(1, 1, 1, 100)
    feeds = {"content_image": photo[None], "mobilenet_conv/Conv/BiasAdd": vector}
    return vector.ravel(), made[f"transform_{kind}"].run(None, feeds)[0][0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, help="write the test suite's stored reference here")
    parser.add_argument("--output", type=Path, default=Path("runs/arbitrary_style_check"))
    args = parser.parse_args()
    from PIL import Image

    from dlapps.tasks.arbitrary_style import load_arbitrary_style

    predictor, transformer = load_arbitrary_style()
    made = sessions()
    painting_path = ROOT / "dlapps/saved_models/style_transfer/starry_night/style.jpg"
    painting = np.asarray(Image.open(painting_path).convert("RGB").resize((256, 256), Image.LANCZOS))
    photo_full = Image.open(ROOT / "examples/chelsea.png").convert("RGB")
    results = {"agreement_grey_levels": {}, "speed_ms": {}}
    for width, height in ((384, 384), (1024, 768)):
        photo = np.asarray(photo_full.resize((width, height), Image.LANCZOS)).astype(np.float32) / 255
        vector = predictor(painting[None].astype(np.float32) / 255).numpy()[0]
        ours = transformer([photo[None], vector[None]]).numpy()[0]
        for kind in ("float", "int8"):
            their_vector, theirs = run_onnx(made, kind, painting.astype(np.float32) / 255, photo)
            results["agreement_grey_levels"][f"{width}x{height}_{kind}"] = {
                "style_vector_max_abs": float(np.abs(their_vector - vector).max()),
                "image_mean": float(np.abs(theirs - ours).mean() * 255),
                "image_max": float(np.abs(theirs - ours).max() * 255),
            }
    import dlapps

    style = dlapps.StyleTransfer.arbitrary()
    for width, height in ((512, 512), (1024, 768)):
        photo = np.asarray(photo_full.resize((width, height), Image.LANCZOS))
        style.stylise(photo, style=painting)
        keras_times, onnx_times = [], []
        for _ in range(5):
            start = time.perf_counter()
            style.stylise(photo, style=painting, max_size=max(width, height))
            keras_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            run_onnx(made, "int8", painting.astype(np.float32) / 255, photo.astype(np.float32) / 255)
            onnx_times.append(time.perf_counter() - start)
        results["speed_ms"][f"{width}x{height}"] = {
            "keras": round(1000 * statistics.median(keras_times), 1),
            "onnxruntime_int8": round(1000 * statistics.median(onnx_times), 1),
        }
    if args.reference:
        small = np.asarray(photo_full.resize((64, 48), Image.LANCZOS))
        vector, image = run_onnx(made, "float", painting.astype(np.float32) / 255, small.astype(np.float32) / 255)
        np.savez_compressed(args.reference, photo=small, painting=painting, style_vector=vector, image=image)
        results["reference"] = str(args.reference)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
