"""Batch inference past one machine on Apache Beam: `dlapps <app> predict PATTERN --runner direct|dataflow|flink|spark`
and, inside your own pipeline, `predict_transform(app, ...)`.

Files matched through Beam's file systems (local paths; `gs://`, `s3://` with their extras) are read as bytes,
batched, and answered by `RunInference` with `AppModelHandler`, which loads the dlapps app class once per worker and
answers with the same records as `dlapps <app> predict --json` (the same decoding rule and compiled functions).
Why our own ModelHandler: Beam's TensorFlow handlers cannot load Keras 3 SavedModels (apache/beam#30616) and need
`tensorflow_hub`. Records go out as sharded JSON Lines, face embeddings also as Parquet, stylised images beside the
records; an unreadable file, or a photo without a face, goes to the dead-letter output (path and reason) and the
pipeline goes on. An optional extra: `pip install 'dlapps[beam]'`.
"""

import json
import time

try:
    import apache_beam as beam
    from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
except ImportError as error:  # the extra is optional: say how to get it
    raise ImportError("Apache Beam is not installed: pip install 'dlapps[beam]' (apache-beam[tensorflow])") from error

APPS = ("cat", "finetune", "detect", "faces", "style")
RUNNERS = {"direct": "DirectRunner", "dataflow": "DataflowRunner", "flink": "FlinkRunner", "spark": "SparkRunner"}


class AppModelHandler(ModelHandler):
    """Beam's `ModelHandler` over a dlapps app class: elements are (path, encoded bytes); each answer is a list of
    `predict --json` records (several for identify's faces, one `{"path", "error", "kind"}` for a failure).

    Args:
        app: cat, finetune, detect, faces (embed, or identify with `gallery`) or style (`style`: a painting for
            the arbitrary network, else `model`: a fast style model).
        model: a model folder or preset (None: the app's default).
        options: the app's options (detect: score_threshold, iou_threshold, max_detections; faces: gallery,
            top_k; style: style, strength).
        batch_size: most elements per batch.
    """

    def __init__(self, app, model=None, batch_size=16, **options):
        if app not in APPS:
            raise ValueError(f"unknown app {app!r}; choose from {', '.join(APPS)}")
        self.app, self.model, self.options, self.batch_size = app, model, options, int(batch_size)

    def load_model(self):
        import dlapps

        options = {k: v for k, v in self.options.items() if v is not None}
        if self.app == "style" and options.get("style"):
            return dlapps.StyleTransfer.arbitrary(options["style"], max_size=options.get("max_size") or 1024)
        classes = {"cat": dlapps.CatClassifier, "finetune": dlapps.ImageClassifier, "detect": dlapps.ObjectDetector,
                   "faces": dlapps.FaceVerifier, "style": dlapps.StyleTransfer}  # fmt: skip
        keep = {"detect": ("score_threshold", "iou_threshold", "max_detections"), "finetune": ("top_k",)}
        kept = {k: options[k] for k in keep.get(self.app, ()) if k in options}
        cls = classes[self.app]
        made = cls.from_preset(**kept) if self.model is None else cls.from_folder(self.model, **kept)
        if self.app == "faces" and options.get("gallery"):
            from dlapps.gallery import GalleryIndex

            gallery = made.gallery(options["gallery"], create=False)
            made.index = GalleryIndex(*gallery.embeddings())
            gallery.close()
        return made

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": self.batch_size}

    def run_inference(self, batch, model, inference_args=None):
        from dlapps.results import NamedBytes

        inputs = [NamedBytes(data, path) for path, data in batch]
        if self.app in ("cat", "finetune"):  # batched forward passes, as predict_iter
            answers = [[r.to_dict()] for r in model.predict_iter(inputs)]
        else:
            answers = [self._one(model, item) for item in inputs]
        return [PredictionResult(element, answer) for element, answer in zip(batch, answers, strict=True)]

    def _one(self, model, item):
        from dlapps.data.images import encode_image

        try:
            if self.app == "faces" and getattr(model, "index", None) is not None:
                top_k = int(self.options.get("top_k") or 3)
                return [r.to_dict() for r in model.identify(item, model.index, top_k=top_k)]
            if self.app == "style":
                result = model.stylise(item, strength=float(self.options.get("strength") or 1.0))
                return [{**result.to_dict(), "_png": encode_image(result.image)}]
            return [model.predict(item).to_dict()]
        except ValueError as error:
            return [{"path": item.name, "error": str(error), "kind": type(error).__name__}]


class _Route(beam.DoFn):
    """Records to the main output, failures to `failed`; counts both (the summary's figures)."""

    def __init__(self):
        self.images = beam.metrics.Metrics.counter("dlapps", "images")
        self.failures = beam.metrics.Metrics.counter("dlapps", "failures")

    def process(self, result):
        self.images.inc()
        for record in result.inference:
            if "error" in record:
                self.failures.inc()
                yield beam.pvalue.TaggedOutput("failed", record)
            else:
                yield record


def _read(readable):
    return readable.metadata.path, readable.read()


def predict_transform(app, model=None, batch_size=16, **options):
    """A `PTransform` from file patterns (a PCollection of str) to the app's records, inside your own pipeline.

    Returns:
        a PTransform whose output has tags `records` (the `predict --json` dicts; style: with `_png`, the image's
        bytes) and `failed` ({"path", "error", "kind"}).

    Example:
        >>> with beam.Pipeline() as p:  # doctest: +SKIP
        ...     out = p | beam.Create(["photos/*.jpg"]) | predict_transform("detect", score_threshold=0.3)
        ...     out.records | beam.Map(print)
    """
    from apache_beam.io import fileio

    handler = AppModelHandler(app, model, batch_size, **options)

    class Predict(beam.PTransform):
        def expand(self, patterns):
            from dlapps.data.images import is_image_file

            files = (patterns | "Match" >> fileio.MatchAll()
                     | "Images" >> beam.Filter(lambda m: is_image_file(m.path))
                     | "Open" >> fileio.ReadMatches() | "Read" >> beam.Map(_read))  # fmt: skip
            answered = files | "Infer" >> RunInference(handler)
            return answered | "Route" >> beam.ParDo(_Route()).with_outputs("failed", main="records")

    return Predict()


def _patterns(paths):
    """Command-line paths as Beam patterns: a local folder becomes every file under it."""
    from pathlib import Path

    return [f"{p.rstrip('/')}/**" if "://" not in p and Path(p).is_dir() else p for p in map(str, paths)]


def run_predict(app, args, model=None, **options):
    """`dlapps <app> predict ... --runner RUNNER`: the pipeline, then one summary line (JSON with --json).

    Raises:
        ValueError: an unknown runner, or a pipeline option Beam refuses.
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    from dlapps.cli.common import emit

    if args.runner not in RUNNERS:
        raise ValueError(f"--runner: expected one of {', '.join(RUNNERS)}; received {args.runner!r}")
    prefix = str(args.output).rstrip("/") + "/"
    extra = list(getattr(args, "pipeline_args", []) or [])
    settings = {"runner": RUNNERS[args.runner]}
    if args.runner == "direct":  # in this process: nothing downloaded (Prism and the portable runners download)
        settings.update(direct_num_workers=1, direct_running_mode="in_memory")
    start = time.perf_counter()
    pipeline = beam.Pipeline(options=PipelineOptions(extra, **settings))
    out = (pipeline | "Patterns" >> beam.Create(_patterns(getattr(args, "paths", None) or args.content))
           | "Predict" >> predict_transform(app, model, getattr(args, "batch_size", 16) or 16, **options))  # fmt: skip
    records = out.records
    if app == "style":
        records = records | "Images" >> beam.Map(_write_image, prefix + "images/")
    if app == "faces" and not options.get("gallery"):
        _write_embeddings(records, prefix + "embeddings")
    records | "Json" >> beam.Map(json.dumps) | "Records" >> beam.io.WriteToText(prefix + "records",
                                                                                 file_name_suffix=".jsonl")  # fmt: skip
    out.failed | "JsonFailed" >> beam.Map(json.dumps) | "Failed" >> beam.io.WriteToText(
        prefix + "failures", file_name_suffix=".jsonl")  # fmt: skip
    result = pipeline.run()
    result.wait_until_finish()
    counts = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]}
    summary = {"images": counts.get("images", 0), "failures": counts.get("failures", 0),
               "seconds": round(time.perf_counter() - start, 1), "runner": args.runner, "output": prefix}  # fmt: skip
    emit(args, summary, f"{summary['images']} images, {summary['failures']} failed, {summary['seconds']} s "
                        f"({args.runner}); records and failures in {prefix}")  # fmt: skip
    return 2 if summary["failures"] else None


def run_from_args(args):
    """The command line's `--runner` handler: the app's predict options to `run_predict`'s."""
    app = args.app
    model = getattr(args, "model_dir", None) or getattr(args, "model", None)
    options = {}
    if app == "detect":
        options = {k: getattr(args, k) for k in ("score_threshold", "iou_threshold", "max_detections")}
    elif app == "finetune":
        options = {"top_k": args.top_k}
    elif app == "faces":
        options = {"gallery": getattr(args, "db", None), "top_k": getattr(args, "top_k", None)}
    elif app == "style":
        if args.style and len(args.style) > 1:
            raise ValueError("--runner takes one painting (--style PAINTING) or --model DIR")
        options = {"style": args.style[0] if args.style else None, "strength": args.strength,
                   "max_size": args.max_size}  # fmt: skip
    from dlapps.presets import resolve_model

    if model is not None and str(model) != "imagenet":
        model = str(resolve_model(model, app))  # a preset's folder; a path as it is
    return run_predict(app, args, model, **options)


def _write_image(record, folder):
    """Write a stylised image beside the records (any Beam file system) and name it in the record."""
    from pathlib import PurePosixPath

    from apache_beam.io.filesystems import FileSystems

    data = record.pop("_png")
    target = f"{folder}{PurePosixPath(str(record['content'])).stem}_{record['style']}.png"
    with FileSystems.create(target) as stream:
        stream.write(data)
    return {**record, "output": target}


def _write_embeddings(records, prefix):
    """Face embeddings as Parquet: path, box, faces, embedding (list of 128 float32)."""
    import pyarrow

    schema = pyarrow.schema([("path", pyarrow.string()), ("box", pyarrow.list_(pyarrow.float32())),
                             ("faces", pyarrow.int32()), ("embedding", pyarrow.list_(pyarrow.float32()))])  # fmt: skip
    records | "Parquet" >> beam.io.WriteToParquet(prefix, schema, file_name_suffix=".parquet")
