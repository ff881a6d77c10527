"""Neural style transfer by optimisation (Gatys et al., as the course teaches): the generated image starts from the
content photo and is updated by gradient descent on J = content_weight * J_content + style_weight * J_style
+ tv_weight * total variation, measured by a pretrained VGG16 loss network (offline HED weights by default).
The procedure and its defaults are the TF tutorial's: content layer block5_conv2, style layers block1-5_conv1,
Adam(0.02, beta_1=0.99, epsilon=0.1) on 0-1 pixels, warmed up over 10 steps; weights 1e4 / 1 / 1 (the tutorial's
1e4 / 1e-2 / 30 left the photo blurred and unstyled with the offline HED VGG16: the style cost rose while the
smoothness term shrank; 1e-1 still left a higher style loss than the arbitrary network on 3 of 6 paintings)."""

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from dlapps.cli.common import ProgressBar, counted, emit, output_names, warn
from dlapps.data.images import ImageReadError, list_image_files, read_image

PROG = "dlapps style"


def _resized(image, max_size, path=None):
    """Float32 (1, H, W, 3) 0-1 pixels of a style image, the longest side at most `max_size` (aspect kept; a notice
    naming `path` when it was shrunk). A side under `MIN_SIDE` (what VGG16's poolings need) is upscaled to it, with a
    notice: a style image is a texture, so upscaling it loses nothing the loss network would have seen."""
    import tensorflow as tf
    from PIL import Image

    image = _fit_max_size(image, max_size, path)
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        scale = MIN_SIDE / min(height, width)
        size = (max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale)))
        warn(PROG, f"{path or 'style image'}: {width}x{height} upscaled to {size[0]}x{size[1]} (the loss network "
                   f"needs a side of at least {MIN_SIDE} pixels)")  # fmt: skip
        image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
    return tf.constant(image[None], tf.float32) / 255.0


def stylise(content, styles, style_weights, loss_network, args, on_step=None):
    """Optimise one image (float32 (1, H, W, 3) 0-1 pixels) with `dlapps.tasks.neural_style.optimise_style`, then
    keep the content's colours and blend by --strength; returns (uint8 image (H, W, 3), [losses per step])."""
    from dlapps.tasks.neural_style import keep_colours, optimise_style, style_grams

    layer_weights = args.style_layer_weights or [1.0] * len(args.style_layers)
    if len(layer_weights) != len(args.style_layers):
        raise ValueError(
            f"--style-layer-weights: {counted(len(layer_weights), 'weight')} for "
            f"{counted(len(args.style_layers), 'style layer')}"
        )
    grams = style_grams(loss_network, styles, style_weights, args.style_layers)
    result, history = optimise_style(
        content, grams, loss_network, args.content_layer, args.style_layers, layer_weights,
        args.content_weight, args.style_weight, args.tv_weight, args.steps, args.optimizer, args.init, args.xla,
        on_step,
    )  # fmt: skip
    if args.explain:
        _explain(history, grams, args)
    result = result[0]
    if args.preserve_colors:
        result = keep_colours(result, content.numpy()[0])
    if args.strength < 1.0:
        result = args.strength * result + (1.0 - args.strength) * content.numpy()[0]
    return (np.clip(result, 0, 1) * 255 + 0.5).astype(np.uint8), history


def _explain(history, style_grams, args):
    """The course's costs on this run's numbers: J = alpha J_content + beta J_style (+ tv), at the first and the last
    step of `history` (the figures the run's summary line and loss curve show)."""
    first = [history[0][key] for key in ("total", "content", "style")]
    last = [history[-1][key] for key in ("total", "content", "style")]
    layer = args.style_layers[0]
    gram = style_grams[layer].numpy()[0]
    lines = [
        "How the cost is computed (the course's neural style transfer, the TF tutorial's normalisation):",
        f"  J_content = mean over {args.content_layer}'s activations of (a_G - a_C)^2",
        f"            = {first[1]:.4g} at the start (the content photo itself: 0 when starting from it), "
        f"{last[1]:.4g} at the last step",
        "  Gram matrix G = F^T F / (n_H n_W): the correlation of every pair of channels over all positions;",
        f"    the style image's G at {layer} is {gram.shape[0]}x{gram.shape[1]}, its top-left corner:",
        *(f"      {'  '.join(f'{v:10.4g}' for v in row)}" for row in gram[:3, :3]),
        f"  J_style = weighted mean over {len(args.style_layers)} layers of mean (G_generated - G_style)^2",
        f"          = {first[2]:.4g} at the start, {last[2]:.4g} at the last step",
        f"  J = {args.content_weight:g} x J_content + {args.style_weight:g} x J_style + {args.tv_weight:g} x tv",
        f"    = {first[0]:.4g} -> {last[0]:.4g}",
    ]
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout, flush=True)


def predict(args):
    optimising = args.method == "optimise" and not args.model
    if args.max_size is None:
        args.max_size = 384 if optimising else 1024
    if args.model and args.style:
        raise ValueError("give --style PAINTING (any painting) or --model DIR (a fast style model), not both")
    if args.model:
        return _predict_fast(args)
    if not args.style:
        raise ValueError("give --style PAINTING (any painting, one pass) or --model DIR (a trained fast style model)")
    if args.style_weights and len(args.style_weights) != len(args.style):
        raise ValueError(
            f"--style-weights: {counted(len(args.style_weights), 'weight')} for {counted(len(args.style), 'style')}"
        )
    return _predict_optimised(args) if optimising else _predict_arbitrary(args)


def _predict_arbitrary(args):
    """Any painting in one pass (Magenta's arbitrary network): photos and videos, a record for each."""
    from dlapps.apps.arbitrary import ArbitraryStyle

    app = ArbitraryStyle(args.style, None if args.weights == "hed" else args.weights, args.max_size, args.style_weights)
    ignored = [option for option, value, default in OPTIMISATION_ONLY
               if value not in ("preserve_colors", "style_weights") and getattr(args, value) != default]  # fmt: skip
    if ignored:
        warn(PROG, f"{', '.join(ignored)}: options of --method optimise, ignored in one pass")
    return _predict_one_pass(args, app, strength=args.strength, preserve_colors=args.preserve_colors)


def _predict_one_pass(args, app, **options):
    """The one-pass modes' loop (a fast model or the arbitrary network): photos through `predict_iter`, a record
    each, videos frame by frame with `app.stylise(frame, **options)`; returns the exit code."""
    from dlapps.cli.common import print_results, report_problems
    from dlapps.data.video import split_videos, transform_video

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    videos, files, problems = split_videos(args.content)
    failures = report_problems(args, PROG, problems)
    names = output_names([*files, *videos])

    def save(result):
        result.save(output / f"{names[Path(result.source)]}_{app.style}.png")

    results = app.predict_iter(files, **options)
    failures += bool(print_results(args, results, lambda r: f"{r.source} -> {r.output}", len(files), "stylising",
                                   save))  # fmt: skip
    for video in videos:
        target = output / f"{names[video]}_{app.style}.mp4"
        progress = ProgressBar(0, video.name)
        try:
            frames = transform_video(video, target, lambda rgb: app.stylise(rgb, **options).image, args.max_size,
                                     lambda index, total, progress=progress: progress.update())  # fmt: skip
        except ValueError as error:
            warn(PROG, f"error: {error}")
            failures += 1
            continue
        emit(args, {"content": str(video), "style": app.style, "frames": frames, "output": str(target)},
             f"{video}: {frames} frames -> {target}")  # fmt: skip
    return 2 if failures else None


def _predict_optimised(args):
    import tensorflow as tf
    from PIL import Image

    from dlapps.backbones.vgg import build_vgg16_features
    from dlapps.plots import plot_loss_curves

    style_weights = args.style_weights or [1.0 / len(args.style)] * len(args.style)
    from dlapps.data.video import split_videos

    videos, files, problems = split_videos(args.content)
    for video in videos:
        warn(PROG, f"error: {video}: a video is stylised frame by frame by a fast model (--model DIR), not --style")
    for _, message in problems:
        warn(PROG, f"error: {message}")
    styles = [_resized(read_image(path), args.max_size, path) for path in args.style]
    loss_network = build_vgg16_features([args.content_layer, *args.style_layers], args.weights)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    failures = len(problems) + len(videos)
    names = output_names(files)
    for path in files:
        try:
            content = content_pixels(read_image(path), args.max_size, path)
            content = tf.constant(content[None], tf.float32) / 255.0
        except ImageReadError as error:
            warn(PROG, f"error: {error}")
            failures += 1
            continue
        stem = names[Path(path)]
        progress = ProgressBar(args.steps, f"{stem}")

        def on_step(number, image, losses, stem=stem, progress=progress):
            if not number:
                return  # the starting image
            progress.update()
            if args.save_every and number % args.save_every == 0:
                frame = (np.clip(image.numpy()[0], 0, 1) * 255 + 0.5).astype(np.uint8)
                Image.fromarray(frame).save(output / f"{stem}_step{number:04d}.png")

        result, history = stylise(content, styles, style_weights, loss_network, args, on_step)
        Image.fromarray(result).save(output / f"{stem}_stylised.png")
        (output / f"{stem}_losses.json").write_text(json.dumps(history))
        plot_loss_curves(history, output / f"{stem}_losses.png", f"{stem}: losses over {args.steps} steps")
        first, last = history[0], history[-1]
        emit(
            args,
            {"content": str(path), "output": str(output / f"{stem}_stylised.png"), "first": first, "last": last},
            f"{path}: total loss {first['total']:.4g} -> {last['total']:.4g} (content {last['content']:.4g}, "
            f"style {last['style']:.4g}) -> {output / f'{stem}_stylised.png'}",
        )
    return 2 if failures else None


# === Fast mode (Johnson et al.) ===

APP = "style"


def load_style_model(model_dir):
    """A fast style model folder's Keras model and config; ValueError naming the folder if it is not one."""
    from dlapps.inference import load_model_dir
    from dlapps.tasks import style_transformer  # noqa: F401 (registers the custom layers)

    model, config = load_model_dir(model_dir, APP)
    if "style" not in config:
        raise ValueError(f"{model_dir}: not a style model folder (its config.json names no style)")
    return model, config


def style_image_path(model_dir, config):
    """The style image a fast model was trained on: a copy in its folder (older folders: the recorded path)."""
    path = Path(config["style_image"])
    return path if path.is_absolute() else Path(model_dir) / path


# The smallest photo side both modes take: the fast network reflection-pads its quarter-resolution maps, and VGG16's
# four poolings before block5 leave nothing of a side under 16 pixels.
MIN_SIDE = 16
# (option, argument name, default) of the optimisation mode, which --model ignores.
OPTIMISATION_ONLY = (("--optimizer", "optimizer", "adam"), ("--steps", "steps", 200), ("--explain", "explain", False),
                     ("--preserve-colors", "preserve_colors", False), ("--style-weights", "style_weights", None),
                     ("--init", "init", "content"), ("--save-every", "save_every", 0))  # fmt: skip


def _checked_size(image, path):
    """The image, or ImageReadError naming `path` when a side is under `MIN_SIDE` pixels."""
    if min(image.shape[:2]) < MIN_SIDE:
        raise ImageReadError(f"{path}: {image.shape[1]}x{image.shape[0]} pixels; this mode needs a side of at least "
                             f"{MIN_SIDE} (after --max-size)")  # fmt: skip
    return image


def content_pixels(image, max_size, path=None):
    """A content photo as uint8 (H, W, 3): shrunk to `max_size` (`_fit_max_size`), then checked (`_checked_size`).

    Raises:
        ImageReadError: a side under `MIN_SIDE` after shrinking; for a strip that fits at a larger size, the message
            names the --max-size that works.
    """
    fitted = _fit_max_size(image, max_size, path)
    try:
        return _checked_size(fitted, path or "<image>")
    except ImageReadError as error:
        height, width = image.shape[:2]
        if min(height, width) >= MIN_SIDE:
            works = -(-MIN_SIDE * max(height, width) // min(height, width))
            raise ImageReadError(f"{error}; --max-size {works} works for this {width}x{height} image") from None
        raise


def _fit_max_size(image, max_size, path=None):
    """uint8 (H, W, 3) shrunk (Lanczos) so its longest side is at most `max_size`; when it was shrunk, a notice
    naming `path` (none without a path). The one resizing rule of both modes."""
    from PIL import Image

    height, width = image.shape[:2]
    if max(height, width) <= max_size:
        return image
    scale = max_size / max(height, width)
    if path is not None:
        warn(PROG, f"{path}: {width}x{height} downscaled to a longest side of {max_size} (--max-size)")
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def _predict_fast(args):
    from dlapps.apps.style import StyleTransfer

    app = StyleTransfer.from_folder(args.model, max_size=args.max_size)
    ignored = [option for option, value, default in OPTIMISATION_ONLY if getattr(args, value) != default]
    if ignored:
        warn(PROG, f"{', '.join(ignored)}: options of the optimisation mode (--style), ignored with --model")
    return _predict_one_pass(args, app, strength=args.strength)


def _content_dataset(files, image_size, batch_size, seed):
    """Training batches: each photo resized (shorter side) and centre-cropped to image_size, decoded once into
    memory (float32 0-255; about 0.8 MB a photo at 256 pixels); unreadable photos are named and skipped."""
    import tensorflow as tf

    images = []
    progress = ProgressBar(len(files), "decoding photos")
    for path in files:
        progress.update()
        try:
            image = read_image(path)
        except ImageReadError as error:
            warn(PROG, f"skipping unreadable image: {error}")
            continue
        height, width = image.shape[:2]
        scale = image_size / min(height, width)
        size = (max(image_size, round(height * scale)), max(image_size, round(width * scale)))
        resized = tf.image.resize(image, size, antialias=True)
        images.append(tf.image.resize_with_crop_or_pad(resized, image_size, image_size).numpy())
    if not images:
        raise ValueError("no readable content images")
    dataset = tf.data.Dataset.from_tensor_slices(np.stack(images)).shuffle(len(images), seed=seed)
    return dataset.batch(batch_size, drop_remainder=len(images) >= batch_size).prefetch(2), len(images)


def train(args):
    import keras

    from dlapps.backbones.vgg import build_vgg16_features
    from dlapps.cli.common import check_run_folder, to_json
    from dlapps.tasks.style_transformer import (
        CONTENT_LAYER,
        STYLE_LAYERS,
        PerceptualLoss,
        build_style_transformer,
        contact_sheet,
        stylise,
        train_style_transformer,
    )
    from dlapps.training import save_atomically

    output = check_run_folder(args, interrupted="checkpoints")
    keras.utils.set_random_seed(args.seed)
    files, problems = list_image_files(args.content)
    for _, message in problems:
        warn(PROG, f"skipping: {message}")
    dev_files, _ = list_image_files(args.dev) if args.dev else ([], [])
    held_out = {Path(f).resolve() for f in dev_files}
    files = [f for f in files if Path(f).resolve() not in held_out]
    style_name = args.name or Path(args.style).stem
    style = _resized(read_image(args.style), args.style_size) * 255.0
    dataset, count = _content_dataset(files, args.image_size, args.batch_size, args.seed)
    dev_images = [_fit_max_size(read_image(f), 256) for f in dev_files[:6]]  # shown at 256 px; no notice
    loss_network = build_vgg16_features([CONTENT_LAYER, *STYLE_LAYERS], args.weights)
    loss = PerceptualLoss(loss_network, style, args.content_weight, args.style_weight, args.tv_weight)
    model = build_style_transformer(tuple(args.filters), args.residual_blocks)
    if args.init_from:
        start, start_config = load_style_model(args.init_from)
        shape = (list(start_config["filters"]), start_config["residual_blocks"])
        if shape != (list(args.filters), args.residual_blocks):
            raise ValueError(f"--init-from {args.init_from}: its network has filters {shape[0]} and {shape[1]} "
                             f"residual blocks; pass the same --filters and --residual-blocks")  # fmt: skip
        model.set_weights(start.get_weights())
    output.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.style, output / f"style{Path(args.style).suffix.lower()}")
    config = {
        "app": APP,
        "style": style_name,
        "style_image": f"style{Path(args.style).suffix.lower()}",  # copied into the folder: the model's own
        "content_images": count,
        "image_size": args.image_size,
        "style_size": args.style_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "content_weight": args.content_weight,
        "style_weight": args.style_weight,
        "tv_weight": args.tv_weight,
        "filters": args.filters,
        "residual_blocks": args.residual_blocks,
        "init_from": str(Path(args.init_from).resolve()) if args.init_from else None,
        "loss_network": f"vgg16 ({args.weights})",
        "content_layer": CONTENT_LAYER,
        "style_layers": list(STYLE_LAYERS),
        "seed": args.seed,
    }
    (output / "config.json").write_text(json.dumps(config, indent=2))
    if not args.json:
        print(
            f"{counted(count, 'content image')} at {args.image_size} px, style {style_name} at {args.style_size} px; "
            f"{counted(args.epochs, 'epoch')} of {counted(int(np.ceil(count / args.batch_size)), 'step')}; "
            f"{model.count_params():,} parameters",
            flush=True,
        )
    steps = int(np.ceil(count / args.batch_size))
    progress = {"bar": None}

    def on_step(epoch, step, values):
        if progress["bar"] is None or progress["bar"].count >= steps:
            progress["bar"] = ProgressBar(steps, f"epoch {epoch}/{args.epochs}")
        progress["bar"].update()

    def on_epoch_end(row):
        if not args.json:
            print(
                f"epoch {row['epoch']}: loss {row['total']:.4g} (content {row['content']:.4g}, style "
                f"{row['style']:.4g}, tv {row['tv']:.4g})",
                flush=True,
            )

    history = train_style_transformer(
        model, loss, dataset, dev_images, output, args.epochs, args.learning_rate, on_step, on_epoch_end
    )
    from dlapps.plots import plot_loss_curves

    plot_loss_curves(history, output / "training_curves.png", f"{style_name}: mean losses per epoch", x="epoch")
    if dev_images:
        contact_sheet(
            [dev_images, [stylise(model, i[None])[0].numpy() for i in dev_images]], output / "dev_contact_sheet.jpg"
        )
    metrics = {"style": style_name, "epochs": len(history), "last": history[-1] if history else None}
    (output / "metrics.json").write_text(to_json(metrics, indent=2))
    save_atomically(model, output / "model.keras")  # last: a folder with model.keras is a finished run
    metrics["output"] = str(output)
    metrics["files"] = sorted(p.name for p in output.iterdir())
    emit(args, metrics, f"wrote {output}/: {', '.join(metrics['files'])}")


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
