"""dlapps: computer-vision apps on one Keras 3 library, from Python, the command line, a web server or a pipeline.

```python
import dlapps
detector = dlapps.ObjectDetector.from_preset("fruit")   # or .from_folder("runs/mine"), or dlapps.load(path)
result = detector.predict("photo.jpg")                    # boxes in image pixels, class names, scores
result.to_dict(); result.plot()                           # the --json record; an annotated RGB array
```

The app classes: `CatClassifier`, `ImageClassifier` (the fine-tuner), `ObjectDetector`, `FaceVerifier` (with
`Gallery`), `StyleTransfer`. Importing `dlapps` imports neither TensorFlow nor Keras; an app class does, when first
named. The library logs through `logging.getLogger("dlapps")` and never prints.
"""

import importlib

__all__ = ["ArbitraryStyle", "CatClassifier", "FaceVerifier", "Gallery", "ImageClassifier", "ObjectDetector",
           "StyleTransfer", "list_presets", "load"]  # fmt: skip

_LAZY = {
    "CatClassifier": "dlapps.apps.cat",
    "ImageClassifier": "dlapps.apps.classifier",
    "ObjectDetector": "dlapps.apps.detector",
    "FaceVerifier": "dlapps.apps.faces",
    "StyleTransfer": "dlapps.apps.style",
    "ArbitraryStyle": "dlapps.apps.arbitrary",
    "Gallery": "dlapps.gallery",
}
# The app class of each app name a model folder's config.json records.
APP_CLASSES = {"cat": "CatClassifier", "finetune": "ImageClassifier", "detect": "ObjectDetector",
               "faces": "FaceVerifier", "style": "StyleTransfer"}  # fmt: skip


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dlapps' has no attribute {name!r}")


def list_presets(app=None):
    """{preset name: what it is} of the shipped models (of one app: "cat", "detect", "faces", "style")."""
    from dlapps.presets import presets

    return presets(app)


def load(path, **options):
    """The app of any model folder or preset name, by the app its config.json records.

    Raises:
        ValueError: not a model folder, or an unknown preset.
    """
    import json
    from pathlib import Path

    from dlapps.presets import PRESETS, preset_dir

    folder = Path(path)
    if not folder.exists() and str(path) in PRESETS:
        folder = preset_dir(str(path))
    config_file = (folder if folder.is_dir() else folder.parent) / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{path}: not a model folder (no config.json); pass a folder made by dlapps or a preset")
    from dlapps.inference import model_app

    app = model_app(json.loads(config_file.read_text()))
    if app not in APP_CLASSES:
        raise ValueError(f"{path}: its config.json names no dlapps app")
    return __getattr__(APP_CLASSES[app]).from_folder(folder, **options)
