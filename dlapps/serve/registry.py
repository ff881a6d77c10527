"""The models a server holds: each app class loaded once at start, each model called one at a time.

A lock per model: concurrent requests decode, encode and talk HTTP in parallel, and take turns on the compiled
function of the model (calling one TensorFlow function from many threads at once gains nothing on a CPU, and
`model.predict` per request is 20x slower; see the issue that built `dlapps serve`).
"""

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("dlapps")

SERVE_APPS = ("cat", "finetune", "detect", "faces", "style")
DEFAULT_MODELS = "cat,detect,faces,style"
STYLE_PRESETS = ("starry_night", "kandinsky", "great_wave")


def parse_models(spec):
    """[(app, source or None)] from `--models`: comma-separated `app` (its shipped default) or `app=PATH|PRESET`;
    `style` may repeat (each adds a painting); plain `style` loads every shipped painting.

    Raises:
        ValueError: an unknown app, an app given twice (except style), or `finetune` without a folder.
    """
    entries, seen = [], set()
    for item in (part.strip() for part in str(spec).split(",")):
        if not item:
            continue
        app, _, source = item.partition("=")
        app = app.strip()
        if app not in SERVE_APPS:
            raise ValueError(f"--models: unknown app {app!r}; choose from {', '.join(SERVE_APPS)}")
        if app in seen and app != "style":
            raise ValueError(f"--models: {app} is given twice; a server holds one model per app (style: several)")
        if app == "finetune" and not source:
            raise ValueError("--models: finetune needs its model folder, e.g. finetune=runs/mine (none is shipped)")
        seen.add(app)
        entries.append((app, source.strip() or None))
    if not entries:
        raise ValueError("--models: no model named; e.g. --models cat,detect,faces,style")
    return entries


class NotLoaded(LookupError):
    """A model, painting or gallery the server does not hold (answered 404)."""


@dataclass
class Served:
    """One loaded app instance and its lock (`with served:` takes the model's turn)."""

    name: str
    instance: object
    source: str
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __enter__(self):
        self.lock.acquire()
        return self.instance

    def __exit__(self, *exc):
        self.lock.release()


class Registry:
    """What `dlapps serve` answers with: classifiers by name (`cat`, `finetune`), one detector, one face model with
    its gallery file, and style models by painting name.

    Args:
        entries: `parse_models`' list.
        gallery: the SQLite gallery file of the faces routes (created on the first enrolment).
        on_load: called with (name, source) after each model loads (the start-up lines).

    Raises:
        ValueError: a model folder that is missing or is another app's (the message names it).
    """

    def __init__(self, entries, gallery="runs/serve/gallery.db", on_load=None):
        import dlapps

        self.classifiers, self.styles = {}, {}
        self.detector = self.faces = None
        self.gallery_path = Path(gallery)
        self.gallery_lock = threading.Lock()
        self.optimise_lock = threading.Lock()
        classes = {"cat": dlapps.CatClassifier, "finetune": dlapps.ImageClassifier, "detect": dlapps.ObjectDetector,
                   "faces": dlapps.FaceVerifier, "style": dlapps.StyleTransfer}  # fmt: skip
        for app, source in entries:
            sources = [source] if source or app != "style" else list(STYLE_PRESETS)
            for one in sources:
                instance = _load(classes[app], app, one)
                name = instance.style if app == "style" else app
                served = Served(name, instance, str(one or instance.folder))
                if app == "style":
                    self.styles[_key(name)] = served
                elif app == "detect":
                    self.detector = served
                elif app == "faces":
                    self.faces = served
                else:
                    self.classifiers[app] = served
                if on_load:
                    on_load(name, served.source)

    def describe(self):
        """The loaded models, as `/v1/models` lists them."""
        models = [{"name": name, "app": name, "source": s.source, "classes": s.instance.class_names}
                  for name, s in self.classifiers.items()]  # fmt: skip
        if self.detector:
            d = self.detector.instance
            models.append({"name": "detect", "app": "detect", "source": self.detector.source,
                           "classes": d.class_names, "score_threshold": d.score_threshold,
                           "iou_threshold": d.iou_threshold, "max_detections": d.max_detections})  # fmt: skip
        if self.faces:
            f = self.faces.instance
            models.append({"name": "faces", "app": "faces", "source": self.faces.source, "threshold": f.threshold,
                           "open_set_threshold": f.open_set_threshold, "gallery": str(self.gallery_path)})  # fmt: skip
        models += [{"name": key, "app": "style", "source": s.source, "style": s.name} for key, s in self.styles.items()]
        return models

    def classifier(self, name):
        if name not in self.classifiers:
            raise NotLoaded(f"no classifier {name!r} is loaded (loaded: {', '.join(self.classifiers) or 'none'})")
        return self.classifiers[name]

    def need(self, app):
        """The served detector or face model. Raises LookupError when the server was started without it."""
        served = {"detect": self.detector, "faces": self.faces}[app]
        if served is None:
            raise NotLoaded(f"the server was started without {app} (add it to --models)")
        return served

    def style(self, name=None):
        """A served style model by painting name (None: the first). Raises LookupError naming the loaded ones."""
        if not self.styles:
            raise NotLoaded("the server was started without style (add it to --models)")
        key = _key(name) if name else next(iter(self.styles))
        if key not in self.styles:
            raise NotLoaded(f"no painting {name!r} is loaded (loaded: {', '.join(self.styles)})")
        return self.styles[key]

    def gallery(self, create=False):
        """A new connection to the gallery (one per request: SQLite connections stay in their thread).

        Raises:
            LookupError: no gallery yet and `create` is False.
        """
        verifier = self.need("faces").instance
        if not create and not self.gallery_path.is_file():
            raise NotLoaded(f"the gallery is empty (no file {self.gallery_path} yet); enroll someone first")
        self.gallery_path.parent.mkdir(parents=True, exist_ok=True)
        return verifier.gallery(self.gallery_path, create=True)

    def names(self):
        """Every model name `/v1/models/{name}:predict` takes."""
        return [*self.classifiers, *(["detect"] if self.detector else []), *(["faces"] if self.faces else []),
                *self.styles]  # fmt: skip


def _key(name):
    """A painting's name as a URL and a form field take it: "The Starry Night" -> "the_starry_night"."""
    return "_".join(str(name).lower().replace("-", " ").split())


def _load(cls, app, source):
    """An app instance from a preset name or a folder (the app's default preset when None)."""
    from dlapps.presets import PRESETS

    if source is None:
        return cls.from_preset()
    if source in PRESETS and not Path(source).exists():
        return cls.from_preset(source)
    return cls.from_folder(source)
