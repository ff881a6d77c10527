"""Neural style transfer by optimisation (Gatys et al., 2016, "Image Style Transfer Using Convolutional Neural
Networks", as the course teaches it): the generated image starts from the content photo (or noise) and is updated by
gradient descent on J = content_weight * J_content + style_weight * J_style + tv_weight * total variation, the costs
measured by a pretrained loss network (`dlapps.backbones.vgg.build_vgg16_features`).

Two optimisers: Adam with the TF tutorial's settings, and L-BFGS (SciPy's L-BFGS-B, the pixels bounded to 0-1, TF
computing the loss and its gradient), as Gatys et al. and jcjohnson/neural-style optimise. SciPy has the optimiser
and TF the gradients; `lbfgs_minimize` is the one line of glue between them.
"""

import numpy as np
import tensorflow as tf

from dlapps.losses.style import content_loss, gram_matrix, style_loss, total_variation_loss


def style_grams(loss_network, styles, style_weights, style_layers):
    """{layer: (1, C, C) float32} the style target: the Gram matrices of each style image, mixed by `style_weights`.

    Args:
        styles: float32 (1, h, w, 3) 0-1 pixels each (sizes may differ).
        style_weights: one positive weight per style, relative: normalised to sum 1 ("7 3" mixes as "0.7 0.3"; a
            single style's weight changes nothing), so that the target stays a mean of real paintings' Gram matrices.
    """
    total = float(sum(style_weights))
    grams = {name: 0.0 for name in style_layers}
    for style, weight in zip(styles, [w / total for w in style_weights], strict=True):
        features = loss_network(style * 255.0)
        for name in style_layers:
            grams[name] += weight * gram_matrix(features[name])
    return grams


def optimise_style(content, grams, loss_network, content_layer, style_layers, style_layer_weights=None,
                   content_weight=1e4, style_weight=1e-1, tv_weight=1.0, steps=100, optimizer="adam",
                   init="content", xla=False, on_step=None):  # fmt: skip
    """Optimise one image against the content and style costs.

    Args:
        content: float32 (1, H, W, 3) 0-1 pixels.
        grams: the style target, `style_grams`.
        loss_network: a feature-dict model taking 0-255 pixels, with `content_layer` and `style_layers`.
        style_layer_weights: one per style layer (normalised to sum 1; default equal).
        steps: Adam updates, or L-BFGS function evaluations.
        optimizer: "adam" (Adam(0.02, beta_1=0.99, epsilon=0.1), the TF tutorial's, with a 10-step warm-up) or
            "lbfgs".
        init: "content" (start from the photo) or "noise" (uniform 0-1).
        xla: compile the loss-and-gradient step with XLA.
        on_step: called as on_step(step, image, {"step", "total", "content", "style", "tv"}) after each measure.
    Returns:
        (float32 (1, H, W, 3) 0-1 image, [the losses of each step]): step k is the image after k updates (step 0:
        the starting image).
    Raises:
        ValueError: `style_layer_weights` and `style_layers` differ in length.
    """
    import keras

    layer_weights = style_layer_weights or [1.0] * len(style_layers)
    if len(layer_weights) != len(style_layers):
        raise ValueError(f"{len(layer_weights)} style layer weights for {len(style_layers)} style layers")
    layer_weights = [w / sum(layer_weights) for w in layer_weights]
    content_target = loss_network(content * 255.0)[content_layer]

    def losses(image):
        features = loss_network(image * 255.0)
        j_content = content_loss(content_target, features[content_layer])
        j_style = tf.add_n([w * style_loss(grams[n], features[n]) for n, w in zip(style_layers, layer_weights)])
        j_tv = total_variation_loss(image)
        return content_weight * j_content + style_weight * j_style + tv_weight * j_tv, j_content, j_style, j_tv

    start = content if init == "content" else tf.random.uniform(tf.shape(content))
    history = []

    def record(values, image):
        total, j_content, j_style, j_tv = (float(v) for v in values)
        history.append({"step": len(history), "total": total, "content": j_content, "style": j_style, "tv": j_tv})
        if on_step:
            on_step(history[-1]["step"], image, history[-1])

    if optimizer == "lbfgs":
        return lbfgs_minimize(losses, start, steps, xla, record), history
    image = tf.Variable(start)
    # The tutorial's Adam, its rate warmed up linearly over the first 10 steps (0.002 to 0.02): at full rate from the
    # first step, Adam's bias-corrected first updates move every pixel by about 0.02 at once and the total loss rose
    # by a quarter before falling (chelsea.png with Starry Night, 256 px: 2.2e5 -> 2.7e5 at step 2; with the warm-up
    # it falls from the first step and ends 20% lower after 60 steps).
    rate = keras.optimizers.schedules.CosineDecay(0.002, decay_steps=1, alpha=1.0, warmup_target=0.02, warmup_steps=10)
    adam = keras.optimizers.Adam(rate, beta_1=0.99, epsilon=0.1)

    @tf.function(jit_compile=xla)
    def step():
        with tf.GradientTape() as tape:
            values = losses(image)
        adam.apply_gradients([(tape.gradient(values[0], image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return values

    for _ in range(steps):
        record(step(), image)
    # step() measures the image before its update: one more measure, of the image returned.
    record(losses(image), image)
    return image.numpy(), history


def lbfgs_minimize(losses, start, steps, xla=False, record=None):
    """SciPy's L-BFGS-B on pixels bounded to 0-1, TF giving the loss and its gradient; at most `steps` function
    evaluations.

    Args:
        losses: losses(image) -> (total, ...) scalars, the first minimised; image float32 like `start`.
        start: float32 (1, H, W, 3) 0-1 pixels.
        record: called as record(losses, image) after each function evaluation.
    Returns:
        float32 (1, H, W, 3) 0-1 pixels.
    """
    from scipy.optimize import Bounds, minimize

    shape = start.shape

    @tf.function(jit_compile=xla)
    def value_and_gradient(image):
        with tf.GradientTape() as tape:
            tape.watch(image)
            values = losses(image)
        return values, tape.gradient(values[0], image)

    def function(flat):
        image = tf.constant(flat.reshape(shape), tf.float32)
        values, gradient = value_and_gradient(image)
        if record:
            record(values, image)
        return float(values[0]), gradient.numpy().astype(np.float64).ravel()

    x0 = np.asarray(start, np.float64).ravel()
    solution = minimize(function, x0, jac=True, method="L-BFGS-B", bounds=Bounds(0.0, 1.0),
                        options={"maxfun": steps, "maxiter": steps})  # fmt: skip
    return solution.x.reshape(shape).astype(np.float32)


def keep_colours(stylised, content):
    """Luminance-only transfer (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer",
    preserving colour): the stylised image's Y (YUV) with the content's U and V. Both float32 (H, W, 3) 0-1."""
    luminance = tf.image.rgb_to_yuv(stylised)[..., :1]
    colours = tf.image.rgb_to_yuv(content)[..., 1:]
    return tf.image.yuv_to_rgb(tf.concat([luminance, colours], -1)).numpy()
