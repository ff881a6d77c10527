"""Preset names for the shipped models, found after a plain `pip install` with no network.

The shipped model folders are package data (`dlapps/saved_models/`, also reachable as `saved_models/` in a source
checkout), so a wheel carries them and `from_preset("fruit")` finds them wherever the package is installed.
"""

from pathlib import Path

SHIPPED_DIR = Path(__file__).resolve().parent / "saved_models"

# preset name -> (the app that made it, its folder under SHIPPED_DIR, one line on what it is)
PRESETS = {
    "cat": ("cat", "cat_classifier", "cat / non-cat on EfficientNet-Lite0 with the ImageNet dog veto"),
    "fruit": ("detect", "object_detector", "apples, bananas and oranges (YOLO-style grid on EfficientNet-Lite0)"),
    "raccoon": ("detect", "raccoon_detector", "raccoons (YOLO-style grid on EfficientNet-Lite0)"),
    "dlib": ("faces", "face_verification", "dlib's face ResNet, 128-D embeddings, calibrated on LFW"),
    "starry_night": ("style", "style_transfer/starry_night", "fast style model: Van Gogh, The Starry Night"),
    "kandinsky": ("style", "style_transfer/kandinsky", "fast style model: Kandinsky, Composition VII"),
    "great_wave": ("style", "style_transfer/great_wave", "fast style model: Hokusai, The Great Wave"),
}

# The preset each app uses when no model is named.
DEFAULTS = {"cat": "cat", "detect": "fruit", "faces": "dlib", "style": "starry_night"}


APPS = ("cat", "finetune", "detect", "faces", "style")


def presets(app=None):
    """{name: description} of the shipped presets, of one app ("cat", "detect", "faces", "style") or all.

    Raises:
        ValueError: an unknown app name.
    """
    if app is not None and app not in APPS:
        raise ValueError(f"unknown app {app!r}; the apps are: {', '.join(APPS)}")
    return {name: text for name, (maker, _, text) in PRESETS.items() if app in (None, maker)}


def preset_dir(name, app=None):
    """The folder of a shipped preset.

    Args:
        name: a preset name (`presets()` lists them).
        app: the app asking; a preset of another app is refused.

    Raises:
        ValueError: an unknown name, or one of another app (the message lists the right ones).
    """
    if app and not presets(app):
        raise ValueError(f"dlapps {app} ships no preset model; train one and load its folder (from_folder, --model)")
    if name not in PRESETS or (app and PRESETS[name][0] != app):
        choices = ", ".join(presets(app))
        raise ValueError(f"unknown preset {name!r}; the shipped ones{f' for {app}' if app else ''} are: {choices}")
    return SHIPPED_DIR / PRESETS[name][1]


def resolve_model(model, app):
    """A model folder from a path or a preset name: an existing path wins, then a preset of `app`.

    Returns:
        Path: the folder (not checked further; `dlapps.inference.load_model_dir` checks it).
    """
    path = Path(model)
    if path.exists() or str(model) not in PRESETS:
        return path
    return preset_dir(str(model), app)


def is_shipped(path):
    """True if `path` lies inside the shipped models' folder (which no verb ever writes into)."""
    return Path(path).resolve().is_relative_to(SHIPPED_DIR)
