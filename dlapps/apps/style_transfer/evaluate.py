"""`dlapps style evaluate` (the network's losses against the optimisation's) and `dlapps style export`."""

import time
from pathlib import Path

import numpy as np

from dlapps.apps.style_transfer.app import PROG, _fit_max_size, _resized, load_style_model, style_image_path
from dlapps.cli.common import counted, emit, warn
from dlapps.data.images import list_image_files, read_image


def evaluate(args):
    """Content and style losses of a fast model on a folder, next to the optimisation mode's on the same images."""
    import tensorflow as tf

    from dlapps.backbones.vgg import build_vgg16_features
    from dlapps.cli.common import check_output_folder, default_output, to_json
    from dlapps.tasks.style_transformer import PerceptualLoss, contact_sheet, stylise

    model, config = load_style_model(args.model)
    output = check_output_folder(args.output or default_output(args.model, "evaluate", "style"))
    output.mkdir(parents=True, exist_ok=True)
    files, problems = list_image_files(args.content)
    for _, message in problems:
        warn(PROG, f"error: {message}")
    network = build_vgg16_features([config["content_layer"], *config["style_layers"]], args.weights)
    style = _resized(read_image(style_image_path(args.model, config)), config["style_size"]) * 255.0
    loss = PerceptualLoss(
        network,
        style,
        config["content_weight"],
        config["style_weight"],
        config["tv_weight"],
        config["content_layer"],
        config["style_layers"],
    )
    rows, originals, fast_images, optimised_images = [], [], [], []
    for index, path in enumerate(files):
        image = _fit_max_size(read_image(path), args.max_size, path)
        content = tf.constant(image[None], tf.float32)
        start = time.perf_counter()
        styled = stylise(model, image[None])
        fast_seconds = time.perf_counter() - start
        total, j_content, j_style, _ = loss(content, tf.cast(styled, tf.float32))
        row = {
            "content": str(path),
            "fast": {
                "total": float(total),
                "content": float(j_content),
                "style": float(j_style),
                "seconds": fast_seconds,
            },
        }
        originals.append(image)
        fast_images.append(styled[0].numpy())
        if index < args.compare:
            row["optimised"], picture = _optimise_with(loss, content, args.steps)
            optimised_images.append(picture)
        rows.append(row)
    if not rows:
        raise ValueError("no readable content images")
    summary = {key: float(np.mean([r["fast"][key] for r in rows])) for key in ("total", "content", "style")}
    result = {
        "model": str(args.model),
        "style": config["style"],
        "images": len(rows),
        "fast_mean": summary,
        "per_image": rows,
    }
    compared = [r for r in rows if "optimised" in r]
    if compared:
        result["optimised_mean"] = {
            key: float(np.mean([r["optimised"][key] for r in compared]))
            for key in ("total", "content", "style", "seconds")
        }
        result["fast_mean_on_compared"] = {
            key: float(np.mean([r["fast"][key] for r in compared])) for key in ("total", "content", "style", "seconds")
        }
    sheet_rows = [originals, fast_images] + ([optimised_images] if optimised_images else [])
    contact_sheet(sheet_rows, output / "contact_sheet.jpg")
    (output / "metrics.json").write_text(to_json(result, indent=2))
    result["output"] = str(output)
    text = (
        f"{counted(len(rows), 'image')}, fast model: loss {summary['total']:.4g} (content {summary['content']:.4g}, "
        f"style {summary['style']:.4g})"
    )
    if compared:
        o = result["optimised_mean"]
        text += (
            f"\noptimisation ({args.steps} Adam steps) on {len(compared)}: loss {o['total']:.4g} (content "
            f"{o['content']:.4g}, style {o['style']:.4g}) in {o['seconds']:.1f} s vs "
            f"{result['fast_mean_on_compared']['seconds'] * 1000:.0f} ms"
        )
    emit(args, result, text + f"\nwrote {output}/contact_sheet.jpg")


def _optimise_with(loss, content, steps):
    """The optimisation mode on the fast model's own loss: L-BFGS (this app's faster optimiser; scale-free, where
    Adam's step depends on the loss's scale) on the pixels from the photo, `steps` function evaluations;
    (losses, uint8 image)."""
    import tensorflow as tf

    from dlapps.tasks.neural_style import lbfgs_minimize

    start = time.perf_counter()
    result = lbfgs_minimize(lambda image: loss(content, image * 255.0), content / 255.0, steps)
    seconds = time.perf_counter() - start
    total, j_content, j_style, _ = loss(content, tf.constant(result) * 255.0)
    picture = np.clip(np.round(result[0] * 255.0), 0, 255).astype(np.uint8)
    return {"total": float(total), "content": float(j_content), "style": float(j_style), "seconds": seconds}, picture


def _export_arbitrary(args):
    """The arbitrary network: a SavedModel (uint8 photo of any size, uint8 painting, strength -> uint8 image) or a
    TFLite pair (style predictor; transformer at one fixed size)."""
    import tensorflow as tf

    from dlapps.apps.arbitrary import ArbitraryStyle
    from dlapps.cli.common import check_output_folder
    from dlapps.data.images import decode_image_bytes
    from dlapps.export import export_graph, path_size
    from dlapps.tasks.arbitrary_style import STYLE_DIM, STYLE_SIZE, paint, style_vector

    if args.format == "onnx":
        raise ValueError("the arbitrary network exports as saved_model or tflite (its ONNX files are the source)")
    names = {"saved_model": "arbitrary_style_saved_model", "tflite": "arbitrary_style_tflite"}
    output = check_output_folder(args.output or Path("runs/style/export") / names[args.format])
    app = ArbitraryStyle(max_size=None)
    module = tf.Module()
    module.predictor, module.transformer = app.predictor, app.transformer
    photo_spec = tf.TensorSpec((1, None, None, 3), tf.uint8, name="photo")
    painting_spec = tf.TensorSpec((None, None, 3), tf.uint8, name="painting")
    strength_spec = tf.TensorSpec((), tf.float32, name="strength")

    @tf.function(input_signature=[photo_spec, painting_spec, strength_spec])
    def serve(photo, painting, strength):
        mixed = strength * style_vector(app.predictor, painting) + (1.0 - strength) * style_vector(app.predictor,
                                                                                                  photo[0])  # fmt: skip
        return {"image": paint(app.transformer, photo, mixed[None])}

    @tf.function(input_signature=[tf.TensorSpec((1,), tf.string, name="photo_bytes"),
                                  tf.TensorSpec((1,), tf.string, name="painting_bytes"), strength_spec])  # fmt: skip
    def serve_bytes(photo_bytes, painting_bytes, strength):
        return serve(decode_image_bytes(photo_bytes[0])[None], decode_image_bytes(painting_bytes[0]), strength)

    info = {"method": "arbitrary (Ghiasi et al. 2017; Magenta's weights, Apache-2.0)",
            "input": "photo uint8 RGB (1, H, W, 3) any size; painting uint8 RGB (H', W', 3); strength float 0-1",
            "output": "image: uint8 RGB (1, H, W, 3)"}  # fmt: skip
    if args.format == "saved_model":
        module.serve, module.serve_bytes = serve, serve_bytes
        export_graph(module, serve, serve_bytes, output, "saved_model", info)
    else:  # a pair: the predictor (painting -> S) and the transformer at one fixed size (TFLite keeps no free size)
        output.mkdir(parents=True, exist_ok=True)
        side = args.image_size
        module.model = app.predictor

        @tf.function(input_signature=[tf.TensorSpec((1, STYLE_SIZE, STYLE_SIZE, 3), tf.uint8, name="painting")])
        def predict(painting):  # already 256x256 (TFLite lacks the antialiased resize): resize and crop it first
            return {"style": app.predictor(tf.cast(painting, tf.float32) / 255.0, training=False)}

        about = {"input": f"painting uint8 (1, {STYLE_SIZE}, {STYLE_SIZE}, 3): shorter side resized to "
                          f"{STYLE_SIZE}, centre crop", "output": "style (1, 100)"}  # fmt: skip
        export_graph(module, predict, None, output / "style_predictor.tflite", "tflite", about)
        module.model = app.transformer

        @tf.function(input_signature=[tf.TensorSpec((1, side, side, 3), tf.uint8, name="photo"),
                                      tf.TensorSpec((1, STYLE_DIM), tf.float32, name="style")])  # fmt: skip
        def transform(photo, style):
            return {"image": paint(app.transformer, photo, style)}

        about = {"input": f"photo uint8 (1, {side}, {side}, 3), style (1, 100)", "output": "image uint8"}
        export_graph(module, transform, None, output / "style_transformer.tflite", "tflite", about)
    result = {"format": args.format, "path": str(output), "bytes": path_size(output)}
    emit(args, result, f"wrote {output} ({result['bytes'] / 1e6:.1f} MB)")


def export(args):
    import tensorflow as tf

    if args.model is None:
        return _export_arbitrary(args)

    from dlapps.cli.common import check_output_folder, default_output
    from dlapps.data.images import decode_image_bytes
    from dlapps.export import export_graph, path_size
    from dlapps.tasks.style_transformer import stylise

    model, config = load_style_model(args.model)
    names = {"saved_model": "style_saved_model", "tflite": "style.tflite", "onnx": "style.onnx"}
    output = check_output_folder(args.output or default_output(args.model, "export", "style") / names[args.format])
    output.parent.mkdir(parents=True, exist_ok=True)
    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")])
    def serve(images):
        return {"images": stylise(model, images, args.strength)}

    @tf.function(input_signature=[tf.TensorSpec((1,), tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        return serve(decode_image_bytes(image_bytes[0])[None])

    module.serve, module.serve_bytes = serve, serve_bytes
    info = {
        "style": config["style"],
        "input": "uint8 RGB (N, H, W, 3), any size",
        "output": "uint8 RGB, same size",
        "strength": args.strength,
    }
    if args.format in ("tflite", "onnx"):
        # The same rule under another input name: tf2onnx loses an input named like an output ("images"). The TFLite
        # converter fails on the free-size convolutions (MLIR to FlatBuffer), so TFLite takes one fixed size.
        side = args.image_size if args.format == "tflite" else None

        @tf.function(input_signature=[tf.TensorSpec((1 if side else None, side, side, 3), tf.uint8, name="pixels")])
        def serve(pixels):
            return {"images": stylise(model, pixels, args.strength)}

        info["input"] = (f"uint8 RGB (1, {side}, {side}, 3) named 'pixels' (resize or pad your image to it)" if side
                         else "uint8 RGB (N, H, W, 3) named 'pixels', any size")  # fmt: skip
    export_graph(module, serve, serve_bytes, output, args.format, info)
    result = {"format": args.format, "path": str(output), "bytes": path_size(output)}
    emit(args, result, f"wrote {output} ({result['bytes'] / 1e6:.1f} MB)")
