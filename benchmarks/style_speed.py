"""Optimisation-mode speed: the TF tutorial's procedure as the reference, then ours, to the same loss, in one run.

    S=../shared/data/style; python benchmarks/style_speed.py $S/content/tubingen.jpg $S/style/starry_night.jpg

Reference (written out here, as https://www.tensorflow.org/tutorials/generative/style_transfer does it): content layer
block5_conv2, style layers block1_conv1 .. block5_conv1, style_weight 1e-2, content_weight 1e4, total_variation_weight
30, Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1) on 0-1 pixels clipped after each step, starting from the
content image, `--steps` steps of a tf.function (the tutorial's loop). The loss network is the offline VGG16 (HED
weights) for every run, since no ImageNet VGG19 file can be had offline. Then the same loss is minimised by
`dlapps style`'s Adam compiled with XLA and by its L-BFGS, each stopped at the first step whose loss is at or below the
reference's final loss; steps and wall time are reported (time to build and trace included for every run).
"""

import argparse
import json
import time
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("content", type=Path)
    parser.add_argument("style", type=Path)
    parser.add_argument("--max-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300, help="the reference's Adam steps")
    parser.add_argument("--output", type=Path, default=Path("runs/style_speed.json"))
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from dlapps.apps.style_transfer.app import _resized
    from dlapps.apps.style_transfer.config import STYLE_LAYERS
    from dlapps.backbones.vgg import build_vgg16_features
    from dlapps.data.images import read_image
    from dlapps.losses.style import content_loss, gram_matrix, style_loss, total_variation_loss
    from dlapps.tasks.neural_style import lbfgs_minimize

    content = _resized(read_image(args.content), args.max_size)
    style = _resized(read_image(args.style), args.max_size)
    network = build_vgg16_features(["block5_conv2", *STYLE_LAYERS], "hed")
    content_target = network(content * 255.0)["block5_conv2"]
    style_grams = {name: gram_matrix(value) for name, value in network(style * 255.0).items() if name in STYLE_LAYERS}

    def losses(image):
        features = network(image * 255.0)
        j_style = tf.add_n([style_loss(style_grams[n], features[n]) for n in STYLE_LAYERS]) / len(STYLE_LAYERS)
        j_content = content_loss(content_target, features["block5_conv2"])
        total = 1e4 * j_content + 1e-2 * j_style + 30 * total_variation_loss(image)
        return total, j_content, j_style

    def adam(steps, xla, target=None):
        start = time.perf_counter()
        image = tf.Variable(content)
        optimizer = keras.optimizers.Adam(0.02, beta_1=0.99, epsilon=0.1)

        @tf.function(jit_compile=xla)
        def step():
            with tf.GradientTape() as tape:
                values = losses(image)
            optimizer.apply_gradients([(tape.gradient(values[0], image), image)])
            image.assign(tf.clip_by_value(image, 0.0, 1.0))
            return values[0]

        for index in range(steps):
            loss = float(step())
            if target is not None and loss <= target:
                return index + 1, time.perf_counter() - start, loss
        return steps, time.perf_counter() - start, float(losses(image)[0])

    reference_steps, reference_seconds, reference_loss = adam(args.steps, xla=False)
    result = {"size": list(content.shape[1:3]), "reference": {"steps": reference_steps, "seconds": reference_seconds,
                                                              "final_loss": reference_loss}}  # fmt: skip
    steps, seconds, loss = adam(args.steps, xla=True, target=reference_loss)
    result["adam_xla"] = {"steps": steps, "seconds": seconds, "loss": loss, "reached": loss <= reference_loss}

    trace = []
    start = time.perf_counter()

    class Reached(Exception):
        pass

    def record(values, image):
        trace.append(float(values[0]))
        if trace[-1] <= reference_loss:
            raise Reached

    try:
        lbfgs_minimize(lambda image: (*losses(image), 0.0), content, args.steps, False, record)
    except Reached:
        pass
    result["lbfgs"] = {"evaluations": len(trace), "seconds": time.perf_counter() - start, "loss": min(trace),
                       "reached": min(trace) <= reference_loss}  # fmt: skip
    for name in ("adam_xla", "lbfgs"):
        result[name]["speedup"] = reference_seconds / result[name]["seconds"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"reference: {reference_steps} Adam steps, {reference_seconds:.1f} s to loss {reference_loss:.4g}; "
          f"XLA Adam: {result['adam_xla']['seconds']:.1f} s ({result['adam_xla']['steps']} steps); L-BFGS: "
          f"{result['lbfgs']['seconds']:.1f} s ({result['lbfgs']['evaluations']} evaluations)")  # fmt: skip


if __name__ == "__main__":
    main()
