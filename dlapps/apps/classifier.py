"""`ImageClassifier`: the fine-tuner's models (your own folder of pictures), from Python.

```python
import dlapps
classifier = dlapps.ImageClassifier.train("pictures/", "runs/mine", epochs=5)   # or .from_folder("runs/mine")
classifier.predict("photo.jpg").label
```
"""

import numpy as np

from dlapps.apps.base import App, expand_inputs, failure, to_image
from dlapps.data.pipelines import resize_images
from dlapps.results import Classification, Failure


class ImageClassifier(App):
    """A trained image classifier folder (`dlapps finetune train`): softmax over the folder's classes.

    Args:
        model: a Keras model taking float32 (N, H, W, 3) 0-255 RGB pixels (preprocessing is inside it).
        config: the folder's config.json (`class_names`).
        folder: the model folder.
        top_k: how many classes a result's record lists (the CLI's --top-k).
    """

    app = "finetune"
    cli = "dlapps.cli.finetune"
    model_option = "model_dir"

    def __init__(self, model, config, folder=None, top_k=3):
        import tensorflow as tf

        super().__init__(model, config, folder)
        self.class_names = list(self.config.get("class_names", []))
        self.top_k = top_k
        self.image_size = tuple(int(side) for side in model.input_shape[1:3])
        # Traced once for any image or batch size (model.predict and eager resizing cost more than the network on
        # one image): the resize rule of training and exports, then the network.
        self._resize = tf.function(
            lambda image: resize_images(image, self.image_size),
            input_signature=[tf.TensorSpec((None, None, 3), tf.uint8)],
        )
        self._forward = tf.function(
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec((None, *self.image_size, 3), tf.float32)],
        )
        self._classify = tf.function(
            lambda images: model(resize_images(images, self.image_size), training=False),
            input_signature=[tf.TensorSpec((1, None, None, 3), tf.uint8)],
        )

    # === Predict ===

    def preprocess(self, image):
        """RGB uint8 (H, W, 3) to the model's float32 (h, w, 3) input: the one resize rule of `predict` and exports."""
        return self._resize(image).numpy()

    def _result(self, source, row):
        order = np.argsort(-row)
        probabilities = {self.class_names[i]: float(row[i]) for i in order}
        top_k = max(1, min(self.top_k, len(self.class_names)))
        return Classification(self.class_names[order[0]], probabilities, source, top_k=top_k)

    def predict(self, image):
        """The class of one image (a path, bytes, a PIL image or an (H, W, 3) uint8 array): a `Classification`.

        Raises:
            ImageReadError: the input cannot be read (the message names it).
        """
        rows = np.asarray(self._classify(to_image(image)[None]))
        return self._result(image, rows[0])

    def predict_iter(self, inputs, batch_size=32):
        """Classifications of many inputs, in order, `batch_size` images per forward pass; an unreadable input
        yields a `Failure` in its place and the rest go on."""
        pending, images = [], []

        def flush():
            rows = np.asarray(self._forward(np.stack(images))) if images else []
            rows = iter(rows)
            for source, ready in pending:
                yield ready if ready is not None else self._result(source, next(rows))
            pending.clear()
            images.clear()

        for item in expand_inputs(inputs):
            if isinstance(item, Failure):
                pending.append((item.source, failure(item)))
                continue
            try:
                images.append(self.preprocess(to_image(item)))
                pending.append((item, None))
            except ValueError as error:
                pending.append((item, failure(item, error)))
            if len(images) == batch_size:
                yield from flush()
        yield from flush()

    # === Train, evaluate, export: the command line's verbs, with its option names and defaults ===

    @classmethod
    def tune(cls, data, output, **options):
        """Random search of the recipe on dev (`dlapps finetune tune`); returns its `Report`."""
        return cls._run_verb("tune", [data], output=output, **options)
