"""Neural style transfer by optimisation (Gatys et al., as the course teaches): the generated image starts from the
content photo and is updated by gradient descent on J = content_weight * J_content + style_weight * J_style
+ tv_weight * total variation, measured by a pretrained VGG16 loss network (offline HED weights by default).
The procedure and its defaults are the TF tutorial's: content layer block5_conv2, style layers block1-5_conv1,
Adam(0.02, beta_1=0.99, epsilon=0.1) on 0-1 pixels, weights 1e4 / 1e-2 / 30."""

import json
from pathlib import Path

import numpy as np

from apps.cli import ProgressBar, emit, warn
from models.data.images import ImageReadError, list_image_files, read_image

PROG = "dlapps style"


def _resized(image, max_size):
    """Float32 (1, H, W, 3) 0-1 pixels, the longest side at most `max_size` (aspect kept)."""
    import tensorflow as tf

    height, width = image.shape[:2]
    scale = min(1.0, max_size / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return tf.image.resize(tf.cast(image[None], tf.float32) / 255.0, size, antialias=True)


def stylise(content, styles, style_weights, loss_network, args, on_step=None):
    """Optimise one image; returns (uint8 image (H, W, 3), [losses per step as dicts])."""
    import keras
    import tensorflow as tf

    from models.losses.style import content_loss, gram_matrix, style_loss, total_variation_loss

    content_layer, style_layers = args.content_layer, args.style_layers
    targets = loss_network(content * 255.0)
    content_target = targets[content_layer]
    style_grams = {name: 0.0 for name in style_layers}
    for style, weight in zip(styles, style_weights, strict=True):
        features = loss_network(style * 255.0)
        for name in style_layers:
            style_grams[name] += weight * gram_matrix(features[name])
    start = content if args.init == "content" else tf.random.uniform(tf.shape(content))
    image = tf.Variable(start)
    optimizer = keras.optimizers.Adam(0.02, beta_1=0.99, epsilon=0.1)

    @tf.function(jit_compile=args.xla)
    def step():
        with tf.GradientTape() as tape:
            features = loss_network(image * 255.0)
            j_content = content_loss(content_target, features[content_layer])
            j_style = tf.add_n([style_loss(style_grams[n], features[n]) for n in style_layers]) / len(style_layers)
            j_tv = total_variation_loss(image)
            total = args.content_weight * j_content + args.style_weight * j_style + args.tv_weight * j_tv
        optimizer.apply_gradients([(tape.gradient(total, image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return total, j_content, j_style, j_tv

    history = []
    for index in range(args.steps):
        total, j_content, j_style, j_tv = (float(v) for v in step())
        history.append({"step": index + 1, "total": total, "content": j_content, "style": j_style, "tv": j_tv})
        if on_step:
            on_step(index + 1, image, history[-1])
    result = image.numpy()[0]
    if args.strength < 1.0:
        result = args.strength * result + (1.0 - args.strength) * content.numpy()[0]
    return (np.clip(result, 0, 1) * 255 + 0.5).astype(np.uint8), history


def predict(args):
    from PIL import Image

    from models.backbones.vgg import build_vgg16_features
    from models.plots import plot_loss_curves

    if args.style_weights and len(args.style_weights) != len(args.style):
        raise ValueError(f"--style-weights: {len(args.style_weights)} weights for {len(args.style)} styles")
    style_weights = args.style_weights or [1.0 / len(args.style)] * len(args.style)
    files, problems = list_image_files(args.content)
    for _, message in problems:
        warn(PROG, f"error: {message}")
    styles = [_resized(read_image(path), args.max_size) for path in args.style]
    loss_network = build_vgg16_features([args.content_layer, *args.style_layers], args.weights)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    failures = len(problems)
    for path in files:
        try:
            content = _resized(read_image(path), args.max_size)
        except ImageReadError as error:
            warn(PROG, f"error: {error}")
            failures += 1
            continue
        stem = Path(path).stem
        progress = ProgressBar(args.steps, f"{stem}")

        def on_step(number, image, losses, stem=stem, progress=progress):
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
