"""Neural style transfer by optimisation (Gatys et al., as the course teaches): the generated image starts from the
content photo and is updated by gradient descent on J = content_weight * J_content + style_weight * J_style
+ tv_weight * total variation, measured by a pretrained VGG16 loss network (offline HED weights by default).
The procedure and its defaults are the TF tutorial's: content layer block5_conv2, style layers block1-5_conv1,
Adam(0.02, beta_1=0.99, epsilon=0.1) on 0-1 pixels, warmed up over 10 steps; weights 1e4 / 1 / 1 (the tutorial's
1e4 / 1e-2 / 30 left the photo blurred and unstyled with the offline HED VGG16: the style cost rose while the
smoothness term shrank; 1e-1 still left a higher style loss than the arbitrary network on 3 of 6 paintings).
This module holds the optimisation and `predict`; the feed-forward network's verbs are `train.py` and `evaluate.py`
(evaluate, export)."""

import json
from pathlib import Path

import numpy as np

from dlapps.cli.common import (
    ProgressBar,
    check_output_folder,
    counted,
    emit,
    new_run_folder,
    output_names,
    say,
    warn,
)
from dlapps.data.images import ImageReadError, read_image

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
    say(args, "\n".join(lines), with_json=True)


def predict(args):
    args.output = check_output_folder(args.output or new_run_folder("runs/style/predict"))
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
    videos, files, problems = split_videos(args.content)
    failures = report_problems(args, PROG, problems)
    names = output_names([*files, *videos])
    if videos:
        output.mkdir(parents=True, exist_ok=True)

    def save(result):  # the folder is made at the first image: a run of failures leaves none
        output.mkdir(parents=True, exist_ok=True)
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
        output.mkdir(parents=True, exist_ok=True)
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
