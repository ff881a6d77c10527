"""`CatClassifier`: the course's cat / non-cat task, from Python.

```python
import dlapps
cat = dlapps.CatClassifier.from_preset()           # the shipped model; .from_folder("imagenet"): zero-shot
cat.predict("examples/chelsea.png").probability     # P(cat)
```
"""

import numpy as np

from dlapps.apps.classifier import ImageClassifier
from dlapps.results import Classification

CLASS_NAMES = ["non-cat", "cat"]


class CatClassifier(ImageClassifier):
    """A cat / non-cat model folder (`dlapps cat train`), or the zero-shot ImageNet baseline ("imagenet").

    A result's `probability` is P(cat); its label is "cat" when P(cat) >= `threshold`.

    Args:
        model: a Keras model taking float32 (N, H, W, 3) 0-255 RGB pixels, returning (N, 1) P(cat).
        config: the folder's config.json (`threshold`, `class_names`, `model`).
        folder: the model folder.
        threshold: the decision threshold on P(cat) (None: the model's, else 0.5).
    """

    app = "cat"
    cli = "dlapps.cli.cat"

    def __init__(self, model, config, folder=None, threshold=None):
        self.imagenet_names = None
        if config.get("model") == "imagenet":
            # Zero-shot: the model also returns the 1,000 ImageNet probabilities, to name the class it sees.
            import keras

            from dlapps.tasks.imagenet import imagenet_class_names

            self.imagenet_names = imagenet_class_names()
            probabilities = model.get_layer("cat_probability").input
            model = keras.Model(model.input, keras.layers.Concatenate()([model.output, probabilities]))
        super().__init__(model, config, folder)
        self.class_names = list(self.config.get("class_names", CLASS_NAMES))
        self.threshold = float(self.config.get("threshold", 0.5) if threshold is None else threshold)

    @classmethod
    def from_folder(cls, folder, **options):
        """A trained cat model folder, or "imagenet" (the zero-shot baseline, built in memory: no folder).

        Raises:
            ValueError: the folder is missing, is not a model folder, or was made by another app.
        """
        from dlapps.apps.cat_classifier.app import load_cat_model

        model, config = load_cat_model(folder)
        return cls(model, config, None if str(folder) == "imagenet" else folder, **options)

    def _result(self, source, row):
        probability = float(row[0])
        label = self.class_names[int(probability >= self.threshold)]
        probabilities = {self.class_names[1]: probability, self.class_names[0]: 1.0 - probability}
        extra = {}
        if self.imagenet_names is not None:
            top = int(np.argmax(row[1:]))
            extra["imagenet_top"] = {"label": self.imagenet_names[top], "probability": float(row[1 + top])}
        return Classification(label, probabilities, source, self.threshold, self.class_names[1], extra=extra)

    @classmethod
    def train(cls, data, output, **options):
        """Train one of the course's ladder of models (`dlapps cat train`; `model="transfer"` by default) and return
        it; `report` holds the run's summary.

        Args:
            data: the catvnoncat folder or .h5 file, or an image folder with cat/ and non-cat/ subfolders.
            output: the new run's folder.
            **options: `dlapps cat train`'s options by their dests (`model`, `epochs`, `learning_rate`, `dev`, ...).
        """
        report = cls._run_verb("train", [data], output=output, **options)
        return cls._trained(report, output)

    def evaluate(self, data, **options):
        """Accuracy, F1, ROC AUC, the confusion matrix and the bias / variance readout (`dlapps cat evaluate`)."""
        return self._run_verb("evaluate", [data], **{self.model_option: self.folder or "imagenet",
                                                     **self.made_with("evaluate"), **options})  # fmt: skip

    def export(self, format="saved_model", output=None, **options):
        """A SavedModel (uint8 images or encoded bytes in, P(cat) and the label out) or a TFLite file."""
        return self._run_verb("export", **{self.model_option: self.folder or "imagenet", "format": format,
                                           "output": output, **self.made_with("export"), **options})  # fmt: skip

    def made_with(self, verb):
        """`threshold` for evaluate (the model's unless the instance was made with another); export stores the
        model's own."""
        return {"threshold": self.threshold} if verb == "evaluate" else {}
