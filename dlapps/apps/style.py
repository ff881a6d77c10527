"""`StyleTransfer`: neural style transfer from Python, in one pass (a fast model, Johnson et al. 2016) or by
optimisation (Gatys et al. 2016, as the course teaches).

```python
import dlapps
style = dlapps.StyleTransfer.from_preset("starry_night")
style.stylise("examples/chelsea.png").save("chelsea_starry.png")
dlapps.StyleTransfer.optimise("examples/chelsea.png", "my_painting.jpg", steps=100).image   # any painting, slower
```
"""

from dlapps.apps.base import App, source_path, to_image
from dlapps.results import Stylised


class StyleTransfer(App):
    """A fast style model folder (`dlapps style train`): a feed-forward network trained for one painting.

    Args:
        model: the Keras transformer network (0-255 float RGB in and out, any size).
        config: the folder's config.json (`style`: the painting's name).
        folder: the model folder.
        max_size: photos whose longest side is above this are shrunk to it first (Lanczos), in pixels.
    """

    app = "style"
    cli = "dlapps.cli.style"
    model_option = "model"

    def __init__(self, model, config, folder=None, max_size=1024):
        super().__init__(model, config, folder)
        if "style" not in self.config:
            raise ValueError(f"{folder}: not a style model folder (its config.json names no style)")
        self.style = self.config["style"]
        self.max_size = max_size
        self._stylise = None

    def stylise(self, image, strength=1.0, max_size=None):
        """One photo in this model's style: a `Stylised` (RGB uint8 (H, W, 3), the size of the photo after
        `max_size`).

        Args:
            image: a path, bytes, a PIL image or an (H, W, 3) uint8 array.
            strength: 0-1, the blend with the photo (1: all style).
            max_size: this call's `max_size` (None: the instance's).

        Raises:
            ImageReadError: the input cannot be read, or a side is under 16 pixels (the message names it).
        """
        from dlapps.apps.style_transfer.app import content_pixels
        from dlapps.tasks.style_transformer import stylise

        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength: expected a number from 0 to 1; received {strength!r}")
        pixels = content_pixels(to_image(image), max_size or self.max_size, source_path(image))
        if self._stylise is None:  # the rule traced whole, as in the exported SavedModel (eager padding cost 40 ms)
            import tensorflow as tf

            self._stylise = tf.function(
                lambda images, strength: stylise(self.model, images, strength),
                input_signature=[tf.TensorSpec((1, None, None, 3), tf.uint8), tf.TensorSpec((), tf.float32)],
            )
        return Stylised(self._stylise(pixels[None], float(strength))[0].numpy(), self.style, image)

    predict = stylise

    @staticmethod
    def arbitrary(style=None, weights=None, max_size=1024, style_weights=None):
        """Any painting in one pass, no training (Ghiasi et al. 2017; Magenta's networks): an `ArbitraryStyle`
        (`dlapps.apps.arbitrary`), whose `stylise(photo, style=..., strength=...)` returns a `Stylised`."""
        from dlapps.apps.arbitrary import ArbitraryStyle

        return ArbitraryStyle(style, weights, max_size, style_weights)

    def losses(self, stylised):
        """The course's costs of a stylised photo, as this model was trained on them (Johnson et al.'s
        `PerceptualLoss` over a frozen VGG16): J_content (the photo's and the result's `content_layer` features),
        J_style (Gram matrices of `style_layers` against the painting's, Gatys et al.), the total variation, and
        the weighted total. The first call loads VGG16 (offline HED weights; a few seconds).

        Args:
            stylised: a `Stylised` this model returned (its `source` is the photo).

        Returns:
            {"total", "content", "style", "tv"}: floats, and {"content_weight", "style_weight", "tv_weight"}.
        """
        import tensorflow as tf

        if getattr(self, "_loss", None) is None:
            from dlapps.apps.style_transfer.app import _resized, style_image_path
            from dlapps.backbones.vgg import build_vgg16_features
            from dlapps.data.images import read_image
            from dlapps.tasks.style_transformer import PerceptualLoss

            c = self.config
            network = build_vgg16_features([c["content_layer"], *c["style_layers"]])
            painting = _resized(read_image(style_image_path(self.folder, c)), c["style_size"]) * 255.0
            self._loss = PerceptualLoss(network, painting, c["content_weight"], c["style_weight"], c["tv_weight"],
                                        c["content_layer"], c["style_layers"])  # fmt: skip
        result = tf.constant(stylised.image[None], tf.float32)
        content = tf.image.resize(tf.constant(to_image(stylised.source)[None], tf.float32), result.shape[1:3],
                                  antialias=True)  # fmt: skip
        values = [float(v) for v in self._loss(content, result)]
        weights = dict(zip(("content_weight", "style_weight", "tv_weight"), self._loss.weights, strict=True))
        return {**dict(zip(("total", "content", "style", "tv"), values, strict=True)), **weights}

    @classmethod
    def optimise(cls, content, style, on_step=None, **options):
        """Gatys et al.'s optimisation: the photo itself is updated by gradient descent on
        J = content_weight J_content + style_weight J_style + tv_weight TV over a VGG16 loss network (offline HED
        weights by default). Any painting; tens of seconds on a CPU.

        Args:
            content: the photo (a path, bytes, a PIL image or an (H, W, 3) uint8 array).
            style: one painting, or a list of them (blended by `style_weights`).
            on_step: called as on_step(step, image, losses) after each step.
            **options: `dlapps style predict`'s options by their dests (`steps`, `content_weight`,
                `style_weight`, `tv_weight`, `optimizer`, `max_size` (default 384), `preserve_colors`,
                `strength`, ...).

        Returns:
            `Stylised`, with `history`: the losses of every step.
        """
        import tensorflow as tf

        from dlapps.apps.style_transfer.app import _resized, content_pixels, stylise
        from dlapps.backbones.vgg import build_vgg16_features

        styles = style if isinstance(style, list | tuple) else [style]
        args = cls.cli_options("predict", ["<content>"], method="optimise", **options)
        args.max_size = args.max_size or 384
        weights = args.style_weights or [1.0 / len(styles)] * len(styles)
        if len(weights) != len(styles):
            raise ValueError(f"style_weights: {len(weights)} weights for {len(styles)} styles")
        style_images = [_resized(to_image(s), args.max_size, source_path(s)) for s in styles]
        pixels = content_pixels(to_image(content), args.max_size, source_path(content))
        loss_network = build_vgg16_features([args.content_layer, *args.style_layers], args.weights)
        result, history = stylise(tf.constant(pixels[None], tf.float32) / 255.0, style_images, weights, loss_network,
                                  args, on_step)  # fmt: skip
        names = ", ".join(source_path(s) or "<image>" for s in styles)
        stylised = Stylised(result, names, content)
        stylised.history = history
        return stylised

    # === Train, evaluate, export: the command line's verbs ===

    @classmethod
    def train(cls, style, content, output, **options):
        """Train a fast model for one painting on folders of photos (Johnson et al.; `dlapps style train`)."""
        report = cls._run_verb("train", style=style, content=content if isinstance(content, list) else [content],
                               output=output, **options)  # fmt: skip
        return cls._trained(report, output)
