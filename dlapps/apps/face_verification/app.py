"""Face verification and recognition, in the course's order: detect and align, embed, compare (verify), look up a
gallery (enroll, identify), measure (evaluate, calibrate), deploy (export).

A face becomes a 150x150 chip (YuNet's five landmarks mapped onto dlib's template), the chip an L2-normalised
128-D embedding f(x); two faces are the same person when ||f(a) - f(b)|| is at most the model's threshold.
"""

import json
import re
import shutil
from pathlib import Path

import numpy as np

from dlapps.apps.face_verification.config import FaceConfig
from dlapps.cli.common import (
    EXIT_BAD_INPUT,
    ProgressBar,
    check_output_folder,
    check_train_output,
    default_output,
    emit,
    keras_verbosity,
    to_json,
    warn,
)
from dlapps.data.faces import NoFaceError, read_face_chips
from dlapps.data.images import ImageReadError
from dlapps.data.pairs import read_pairs_lines, sample_pairs
from dlapps.data.readers import DataError, read_image_folder
from dlapps.gallery import Gallery, GalleryIndex, normalise_name
from dlapps.metrics.verification import (
    MIN_PAIRS_10_FOLD,
    best_threshold,
    fit_confidence,
    roc_curve,
    ten_fold_accuracy,
    verification_report,
)
from dlapps.plots import plot_gallery, plot_roc, short_name
from dlapps.tasks.face_embedder import build_face_embedder, model_identity

PROG = "dlapps faces"
APP = "faces"


# === Model ===


class FaceModel:
    """An embedding model folder: config.json (backbone, weights, threshold), and model.keras once trained."""

    def __init__(self, model_dir):
        import keras

        folder = Path(model_dir)
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise ValueError(f"{folder}: not a face model folder (no config.json); train one or pass another --model")
        saved = json.loads(config_file.read_text())
        if saved.get("app") != APP:
            raise ValueError(f"{folder}: this model was made by dlapps {saved.get('app', 'another app')}, not {PROG}")
        self.folder = folder
        self.config = FaceConfig(**{k: v for k, v in saved.items() if k in FaceConfig().to_dict()})
        if (folder / "model.keras").is_file():
            import dlapps.backbones.dlib_resnet  # noqa: F401  (registers dlib's layers before loading)

            self.model = keras.saving.load_model(folder / "model.keras", compile=False)
        else:
            self.model = build_face_embedder(self.config.backbone, self.config.weights)
        self.identity = model_identity(self.model)
        self._forward = None

    def embed(self, chips):
        """(n, 150, 150, 3) uint8 chips to (n, d) float32 unit embeddings (one traced function, batches of 32: an
        eager Keras call cost 90 ms a face more than the network)."""
        import tensorflow as tf

        if self._forward is None:
            model = self.model
            self._forward = tf.function(
                lambda x: model(x, training=False),
                input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)],
            )
        chips = np.asarray(chips, np.float32)
        outputs = [np.asarray(self._forward(chips[i : i + 32])) for i in range(0, len(chips), 32)]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.model.output_shape[-1]), np.float32)

    def confidence(self, distance):
        """P(same person | distance), from the logistic fitted on the calibration pairs."""
        z = self.config.confidence_bias + self.config.confidence_slope * distance
        return float(1.0 / (1.0 + np.exp(-z)))


def find_faces(files, all_faces=False, on_error=None):
    """[(path, face, chip)] for the largest face of each file (every face with `all_faces`), with a progress bar.

    Files that cannot be read or show no face go to `on_error(path, error)`.
    """
    found = []
    progress = ProgressBar(len(files), "finding faces")
    for path in files:
        progress.update()
        try:
            found.extend((path, face, chip) for face, chip in read_face_chips(path, all_faces=all_faces))
        except (ImageReadError, NoFaceError) as error:
            if on_error:
                on_error(path, error)
    return found


def embed_files(face_model, files, all_faces=False, on_error=None):
    """[(path, face, embedding)] of `find_faces`' chips."""
    found = find_faces(files, all_faces, on_error)
    embeddings = face_model.embed([chip for _, _, chip in found]) if found else np.zeros((0, 128))
    return [(path, face, embedding) for (path, face, _), embedding in zip(found, embeddings, strict=True)]


def _report_error(path, error):
    warn(PROG, f"error: {error}")


# === Verify ===


def verify(args):
    from dlapps.apps.faces import FaceVerifier

    faces = FaceVerifier.from_folder(args.model)
    if args.all_faces:
        # Every face of image_a against every face of image_b: one record per pair, the closest pair first.
        results = faces.verify_all(args.image_a, args.image_b)
        if not args.json:
            print(f"{args.image_a}: {counted_faces(results[0].faces_a)}, {args.image_b}: "
                  f"{counted_faces(results[0].faces_b)}; {len(results)} pair(s), closest first")  # fmt: skip
        for result in results:
            emit(args, result.to_dict(), f"  a {_box(result.box_a)} - b {_box(result.box_b)}: {_verdict(result)}")
        return None
    result = faces.verify(args.image_a, args.image_b)
    for name, count, box in (("image_a", result.faces_a, result.box_a), ("image_b", result.faces_b, result.box_b)):
        if count > 1:
            warn(PROG, f"{getattr(args, name)}: {count} faces found; the largest is used (box {_box(box)}); "
                       "--all-faces compares every face")  # fmt: skip
    emit(args, result.to_dict(), _verdict(result))
    return None


def counted_faces(count):
    return f"{count} face{'' if count == 1 else 's'}"


def _box(box):
    """[x, y, width, height] in whole pixels, for a message."""
    return [round(v) for v in box]


def _verdict(result):
    verdict = "same person" if result.same_person else "different people"
    return (f"{verdict}: distance {result.distance:.3f} (threshold {result.threshold:.3f}), "
            f"confidence {result.confidence:.2f}")  # fmt: skip


# === Gallery: enroll, identify, list and remove ===


EXPECTED_PEOPLE = (
    "expected a folder of person subfolders (people/alice/1.jpg), a flat folder of name.jpg files (one person "
    "each, named by the file: younes.jpg -> younes), or photos with --name"
)


# A file stem that names no one: no letter at all (1.jpg, 2024-05-01 10.31.02.jpg), or a camera's or phone's numbered
# name (IMG_0001, DSC01234, PXL_20240501_103102, photo 3): a folder of them is one person's photos, not a flat gallery.
CAMERA_NAME = re.compile(r"^[^a-zA-Z]*$|^(img|dsc|dscn|dscf|pxl|p|dcim|photo|image|pic|picture|scan|mvimg|screenshot)"
                         r"[\W_]*\d", re.IGNORECASE)  # fmt: skip


def _layout_error(path, problem, flat=True):
    """A DataError saying what the faces app expects instead."""
    expected = EXPECTED_PEOPLE if flat else "expected one subfolder per person, each with photos (people/alice/1.jpg)"
    return DataError(f"{path}: {problem}; {expected}")


def read_people(folder, flat=False):
    """(files, labels, names) of a folder of identities (one subfolder per person; with `flat`, a folder of
    name.jpg photos is also accepted, one person per file named by its stem); non-image files, loose files beside
    the person folders and person folders without photos are named and left out, not fatal."""
    from dlapps.data.images import is_hidden, is_image_file
    from dlapps.data.readers import _split_name

    folder = Path(folder)
    if not folder.is_dir():
        raise _layout_error(folder, "not a folder", flat)
    entries = [p for p in folder.iterdir() if not is_hidden(p)]
    subfolders = sorted(p for p in entries if p.is_dir())
    photos = sorted(p for p in entries if p.is_file() and is_image_file(p))
    if not subfolders:
        if flat and photos:
            numbered = [p.name for p in photos if CAMERA_NAME.match(p.stem)]
            if numbered:
                problem = (f"its photos are named like a camera's or by number ({numbered[0]}), not by person: to "
                           "enroll them as one person, pass --name NAME")  # fmt: skip
                raise _layout_error(folder, problem, flat)
            names = sorted({normalise_name(p.stem) for p in photos})
            return photos, [names.index(normalise_name(p.stem)) for p in photos], names
        found = f"{len(photos)} photo(s) and no person subfolders" if photos else "no person subfolders nor photos"
        raise _layout_error(folder, f"holds {found}", flat)
    splits = [p.name for p in subfolders if _split_name(p.name)]
    if splits:
        raise _layout_error(folder, f"holds {splits}, which look like data splits, not people", flat)
    try:
        files, labels, names, skipped = read_image_folder(folder, allow_empty=True)
    except DataError as error:
        raise DataError(f"{error}; {EXPECTED_PEOPLE if flat else 'expected one subfolder per person'}") from None
    for path in skipped:
        warn(PROG, f"skipping non-image file {path}")
    loose = [p for p in entries if p.is_file()]
    if loose:
        warn(PROG, f"{folder}: {len(loose)} file(s) beside the person folders left out (e.g. {loose[0].name}); "
                   "put each photo in its person's folder")  # fmt: skip
    present = set(labels)
    for index, name in enumerate(names):
        if index not in present:
            warn(PROG, f"{folder / name}: no photos; this person is left out")
    return files, labels, names


def _people_to_enroll(paths, name, problems):
    """[(name, [photos])] from the command line: with `name`, every photo of `paths` (files, one person's folders)
    is that person's; without, each path is a folder of person subfolders or a flat folder of name.jpg files.
    Paths that fit neither go to `problems` (their messages), and the rest are still enrolled."""
    from dlapps.data.images import is_hidden, is_image_file, list_image_files

    if name is not None:
        photos = []
        for path in map(Path, paths):
            if path.is_dir():
                inner = [p for p in path.iterdir() if p.is_dir() and not is_hidden(p)]
                if inner and not any(p.is_file() and is_image_file(p) for p in path.iterdir()):
                    problems.append(f"{path}: holds person subfolders ({', '.join(sorted(p.name for p in inner)[:3])}"
                                    f"), but --name enrolls one person; drop --name to enroll each subfolder as a "
                                    "person")  # fmt: skip
                    continue
            files, missing = list_image_files([path])
            problems.extend(message for _, message in missing)
            photos.extend(files)
        return [(name, photos)] if photos else []
    people = {}
    for path in map(Path, paths):
        if not path.exists():
            problems.append(f"{path}: no such file or folder")
        elif not path.is_dir():
            problems.append(f'{path}: a photo needs --name "Person Name"; {EXPECTED_PEOPLE}')
        else:
            try:
                files, labels, names = read_people(path, flat=True)
            except DataError as error:
                problems.append(str(error))
                continue
            for file, label in zip(files, labels, strict=True):
                people.setdefault(names[label], []).append(file)
    return list(people.items())


def enroll(args):
    from dlapps.apps.faces import FaceVerifier

    problems = []
    name = normalise_name(args.name) if args.name is not None else None
    people = _people_to_enroll(args.paths, name, problems)
    for problem in problems:
        warn(PROG, f"error: {problem}")
    if not people:
        raise DataError(f"nothing to enroll in {', '.join(map(str, args.paths))}"
                        + ("" if problems else f"; {EXPECTED_PEOPLE}"))  # fmt: skip
    faces = FaceVerifier.from_folder(args.model)
    gallery = faces.gallery(args.db)
    failures, summary, missed = [], {}, []
    progress = ProgressBar(len(people), "enrolling")
    try:
        for person, photos in people:
            progress.update()
            skipped = []
            try:
                # One transaction per person: an interruption keeps every person enrolled before it.
                summary[person] = faces.enroll(gallery, person, photos, skipped=skipped)
            except ValueError as error:
                warn(PROG, f"{error}")
                missed.append(person)
            failures.extend(str(record.source) for record in skipped)
        total = len(gallery.people())
    finally:
        gallery.close()
    result = {"db": str(args.db), "enrolled": summary, "not_enrolled": missed, "skipped": failures,
              "problems": problems, "people": total}  # fmt: skip
    lines = [f"  {person}: {count} image(s)" for person, count in summary.items()]
    people = f"{len(summary)} {'person' if len(summary) == 1 else 'people'}"
    lines.append(f"enrolled {people} into {args.db} ({total} in all)"
                 + (f"; not enrolled: {', '.join(missed)}" if missed else ""))  # fmt: skip
    emit(args, result, "\n".join(lines))
    return EXIT_BAD_INPUT if failures or missed or problems else None


def _open_gallery(db, face_model=None):
    """An existing gallery (a missing file is an error, not a new empty gallery), made with `face_model` (None: any
    model's, for listing and removing people, which compare no embeddings)."""
    if Path(db).is_dir():
        raise ValueError(f"--db {db} is a folder; pass the gallery file made by enroll")
    if not Path(db).is_file():
        raise ValueError(f"{db}: no such gallery; enroll people first (dlapps faces enroll DIR --db {db})")
    if face_model is None:
        return Gallery(db, None, None, create=False)
    return Gallery(db, face_model.identity, 128, create=False)


def identify(args):
    from dlapps.apps.faces import FaceVerifier

    faces = FaceVerifier.from_folder(args.model)
    gallery = _open_gallery(args.db, faces.face_model)
    names, vectors = gallery.embeddings()
    if not names:
        raise ValueError(f"{args.db}: the gallery is empty; enroll people first")
    failures = 0
    options = {"top_k": args.top_k, "match": args.match, "threshold": args.threshold, "all_faces": args.all_faces}
    for result in faces.identify_iter(args.paths, GalleryIndex(names, vectors), **options):
        if not result.ok:
            failures += 1
            if args.json:
                print(to_json(result.to_dict()), flush=True)
            continue
        best, distance = result.top_k[0]
        others = ", ".join(f"{n} {d:.3f}" for n, d in result.top_k[1:])
        text = f"{result.source}: {result.name} (closest {best}, distance {distance:.3f})"
        emit(args, result.to_dict(), text + (f"; then {others}" if others else ""))
    gallery.close()
    return EXIT_BAD_INPUT if failures else None


def gallery(args):
    store = _open_gallery(args.db)  # no model: listing and removing compare no embeddings
    try:
        remove = [normalise_name(name) for name in args.remove]
        unknown = [name for name in remove if not store.has(name)]
        if unknown:  # checked before removing anyone: a typo removes nobody
            raise ValueError(f"{args.db}: no person named {', '.join(map(repr, unknown))}; nobody was removed")
        for name in remove:
            store.remove(name)
        people = store.people()
    finally:
        store.close()
    removed = f"removed {', '.join(remove)}\n" if remove and not args.json else ""
    listing = "\n".join(f"{name}: {count} image(s)" for name, count in people) or f"{args.db}: empty"
    emit(args, {"db": str(args.db), "people": dict(people), "removed": remove}, removed + listing)


# === Evaluate and calibrate ===


def read_numbered_pairs(path, pairs_per_person=10, same_pairs=None, seed=0):
    """([(line_number or None, path_a, path_b, same)], [(line_number, message)] of malformed lines): a pairs file's
    pairs with their line numbers, or pairs built from a folder of identities (no line numbers)."""
    path = Path(path)
    if path.is_file():
        return read_pairs_lines(path)
    files, labels, names = read_people(path)
    by_person = [[f for f, label in zip(files, labels, strict=True) if label == i] for i in range(len(names))]
    ordered = [f for person in by_person for f in person]
    try:
        # --same-pairs sets the total; the per-person cap applies only without it.
        cap = None if same_pairs else pairs_per_person
        pairs, same = sample_pairs([len(p) for p in by_person], cap, same_pairs, seed)
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    return [(None, ordered[a], ordered[b], int(s)) for (a, b), s in zip(pairs, same, strict=True)], []


def pair_distances(face_model, pairs, source=None):
    """Distances of the pairs whose both images show a face; the others are named and left out.

    Args:
        pairs: [(path_a, path_b, same)], or [(line_number, path_a, path_b, same)] from a pairs file `source`: a pair
            left out is then also named by its line ("pairs.txt:3: pair left out: no usable face in b.jpg").

    Returns:
        (kept [(path_a, path_b, same)], distances, same, failed files, left_out [{"line", "reason"}]).
    """
    numbered = [p if len(p) == 4 else (None, *p) for p in pairs]
    files = sorted({str(p) for _, a, b, _ in numbered for p in (a, b)})
    failed = {}

    def on_error(path, error):
        failed[str(path)] = str(error)
        _report_error(path, error)

    found = embed_files(face_model, [Path(f) for f in files], on_error=on_error)
    embedding = {str(path): e for path, _, e in found}
    kept, left_out = [], []
    for line, a, b, s in numbered:
        missing = [str(p) for p in (a, b) if str(p) not in embedding]
        if not missing:
            kept.append((a, b, s))
            continue
        reason = f"no usable face in {' and '.join(missing)}"
        left_out.append({"line": line, "reason": reason})
        if line is not None:
            warn(PROG, f"{source}:{line}: pair left out: {reason}")
    distances = np.array([np.linalg.norm(embedding[str(a)] - embedding[str(b)]) for a, b, _ in kept])
    return kept, distances, np.array([s for _, _, s in kept]), sorted(failed), left_out


def _measured_pairs(face_model, args):
    """The pairs of `args.pairs` and their distances; both kinds of pair must be there. Malformed lines of a pairs
    file are named with their numbers and skipped, as are pairs without a face; `problems` says what was left out."""
    numbered, malformed = read_numbered_pairs(args.pairs, args.pairs_per_person, args.same_pairs, args.seed)
    for _, message in malformed:
        warn(PROG, f"error: {message}; line skipped")
    kept, distances, same, failed, left_out = pair_distances(face_model, numbered, args.pairs)
    if len(set(same.tolist())) < 2:
        raise DataError(f"{args.pairs}: need both same-person and different-people pairs with faces found "
                        f"({len(kept)} pair(s) usable of {len(numbered) + len(malformed)})")  # fmt: skip
    problems = {
        "pairs_evaluated": len(kept),
        "malformed_lines": [line for line, _ in malformed],
        "pairs_left_out": left_out,
        "skipped_files": failed,
    }
    return kept, distances, same, problems


def _left_out_text(problems):
    """'; 2 pairs left out (1 malformed line, 1 pair without a usable face)', or ''."""
    malformed, faceless = len(problems["malformed_lines"]), len(problems["pairs_left_out"])
    if not malformed and not faceless:
        return ""
    return (f"; {malformed + faceless} left out ({malformed} malformed line(s), {faceless} pair(s) without a usable "
            "face: named above)")  # fmt: skip


def _exit_code(problems):
    """2 when some pairs or lines were left out (the others were measured), else None (0)."""
    return EXIT_BAD_INPUT if problems["malformed_lines"] or problems["pairs_left_out"] else None


def _figure(value, report, far=False):
    """A report figure, or why the pairs cannot measure it."""
    if value is None:
        return ("n/a (FAR 1e-3 needs 1,000 or more different-people pairs)" if far
                else f"n/a (10 folds need {MIN_PAIRS_10_FOLD} or more pairs)")  # fmt: skip
    if far:
        return f"{value:.4f}"
    return f"{value:.4f} +/- {report['accuracy_10_fold_std']:.4f}"


def _open_set_threshold(report):
    """The distance at FAR 1e-3 when the pairs can measure it; else None (identify then uses the pair threshold)."""
    if report["tar_at_far_1e-3_threshold"] is None:
        warn(PROG, "fewer than 1,000 different-people pairs: the open-set threshold (FAR 1e-3) cannot be measured; "
                   "identify will use the pair threshold")  # fmt: skip
    return report["tar_at_far_1e-3_threshold"]


def evaluate(args):
    face_model = FaceModel(args.model)
    kept, distances, same, problems = _measured_pairs(face_model, args)
    report = verification_report(distances, same, face_model.config.threshold)
    output = Path(args.output)
    far, tar, _ = roc_curve(distances, same)
    marks = [(report["eer"], 1 - report["eer"], f"EER {report['eer']:.3f}")]
    plot_roc(far, tar, output / "roc.png", f"ROC: AUC {report['roc_auc']:.4f}, {len(kept)} pairs", marks)
    # The worst pairs: same people farthest apart, different people closest.
    wrong_same = [i for i in np.argsort(-distances) if same[i]][:8]
    wrong_different = [i for i in np.argsort(distances) if not same[i]][:8]
    images, captions = [], []
    for i in wrong_same + wrong_different:
        a, b, s = kept[i]
        chips = [read_face_chips(p)[0][1] for p in (a, b)]
        images.append(np.concatenate(chips, axis=1))
        truth = "same person" if s else "different"
        wrong = (distances[i] <= face_model.config.threshold) != bool(s)
        label = lambda path: short_name(f"{Path(path).parent.name}/{Path(path).name}", 26)  # noqa: E731
        captions.append(f"{label(a)}\n{label(b)}\ntruth: {truth}\nd {distances[i]:.3f}" + (", WRONG" if wrong else ""))
    title = f"Worst pairs (threshold {face_model.config.threshold:.3f}): same people far apart, then different close"
    plot_gallery(images, captions, output / "worst_pairs.png", title, columns=4)
    result = {
        **report,
        **problems,
        "roc": str(output / "roc.png"),
        "worst_pairs": str(output / "worst_pairs.png"),
    }
    text = [
        f"{len(kept)} pairs evaluated ({report['same_pairs']} same person){_left_out_text(problems)}",
        f"accuracy at the model's threshold {report['threshold']:.3f}: {report['accuracy_at_threshold']:.4f}",
        f"accuracy, 10-fold threshold (LFW protocol): {_figure(report['accuracy_10_fold'], report)}",
        f"ROC AUC {report['roc_auc']:.4f}  EER {report['eer']:.4f}  "
        f"TAR@FAR=1e-3 {_figure(report['tar_at_far_1e-3'], report, far=True)}",
        f"pictures: {output / 'roc.png'}, {output / 'worst_pairs.png'}",
    ]
    emit(args, result, "\n".join(text))
    return _exit_code(problems)


def calibrate(args):
    """Choose the threshold (and the confidence curve) on the user's pairs; write a new model folder."""
    face_model = FaceModel(args.model)
    kept, distances, same, problems = _measured_pairs(face_model, args)
    output = check_output_folder(args.output)
    if output.resolve() == face_model.folder.resolve() or (output / "config.json").exists():
        raise FileExistsError(f"{output} already holds a model (or a run's config.json); calibrate writes a new model "
                              "folder beside, never over, another: pick a new --output")  # fmt: skip
    output.mkdir(parents=True, exist_ok=True)
    config = face_model.config
    config.threshold = best_threshold(distances, same)
    report = verification_report(distances, same, config.threshold)
    config.confidence_bias, config.confidence_slope = fit_confidence(distances, same)
    config.open_set_threshold = _open_set_threshold(report)
    if (face_model.folder / "model.keras").is_file():
        shutil.copy2(face_model.folder / "model.keras", output / "model.keras")
    calibration = {"pairs": str(Path(args.pairs).resolve()), "count": len(kept), **problems}
    (output / "config.json").write_text(to_json({"app": APP, **config.to_dict(), "calibration": calibration}, indent=2))
    emit(args, {**report, **problems, "output": str(output)},
         f"threshold {config.threshold:.3f}: accuracy {report['accuracy_at_threshold']:.4f} on {len(kept)} pairs "
         f"evaluated (10-fold {_figure(report['accuracy_10_fold'], report)}){_left_out_text(problems)} "
         f"-> {output}")  # fmt: skip
    return _exit_code(problems)


# === Export ===


def export(args):
    import tensorflow as tf

    from dlapps.export import export_graph, path_size

    face_model = FaceModel(args.model)
    model = face_model.model
    name = {"saved_model": "faces_saved_model", "tflite": "faces.tflite"}[args.format]
    output = check_output_folder(args.output or default_output(args.model, "export", APP) / name)
    if args.format == "saved_model" and output.exists():
        shutil.rmtree(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, 150, 150, 3], tf.uint8, name="chips")])
    def serve(chips):
        return {"embeddings": model(tf.cast(chips, tf.float32), training=False)}

    module.serve = serve
    info = {"input": "aligned 150x150 RGB face chips, uint8 (N, 150, 150, 3)",
            "output": "L2-normalised embeddings (N, 128)", "threshold": face_model.config.threshold}  # fmt: skip
    export_graph(module, serve, None, output, args.format, info)
    result = {"format": args.format, "path": str(output), "bytes": path_size(output), **info}
    emit(args, result, f"wrote {output} ({result['bytes'] / 1e6:.1f} MB): {info['input']} -> {info['output']}")


# === Train ===


def _chips_by_person(folder, seed):
    """Every readable face chip of a folder of identities, grouped by person, in memory (uint8)."""
    files, labels, names = read_people(folder)
    label_of = dict(zip(files, labels, strict=True))
    chips = {}
    for path, _, chip in find_faces(files, on_error=_report_error):
        chips.setdefault(names[label_of[path]], []).append(chip)
    people = sorted(name for name, own in chips.items() if len(own) >= 2)
    if len(people) < len(names):
        warn(PROG, f"{len(names) - len(people)} of {len(names)} people have fewer than 2 faces found and are left out "
                   "of triplet training (a triplet needs two photos of a person)")  # fmt: skip
    if len(people) < 4:
        raise DataError(f"{folder}: triplet training needs at least 4 people with 2 or more faces; found {len(people)}")
    return {name: np.stack(chips[name]) for name in people}


def train(args):
    """Triplet training through `dlapps.training.fit_phases`: resumable, the best epoch on the dev pairs' 10-fold
    accuracy kept; the threshold and the confidence curve chosen on those pairs are stored with the model."""
    import keras

    from dlapps.tasks.face_embedder import DevPairs, labelled_batches, pk_batches, triplet_phases
    from dlapps.training import (
        finished_phase_model,
        fit_phases,
        plot_phase_history,
        remove_phase_files,
        save_atomically,
    )

    output, state = check_train_output(args)
    weights = args.weights or {"dlib": "dlib", "efficientnet_lite0": "imagenet", "small_resnet": "none"}[args.backbone]
    config = FaceConfig(
        backbone=args.backbone, weights=weights, margin=args.margin, mining=args.mining, epochs=args.epochs,
        head_epochs=args.head_epochs, steps_per_epoch=args.steps_per_epoch, learning_rate=args.learning_rate,
        seed=args.seed, people_per_batch=args.people_per_batch, images_per_person=args.images_per_person,
        fine_tune_fraction=args.fine_tune_fraction, jitter=args.jitter, warmup_epochs=args.warmup_epochs,
    )  # fmt: skip
    if args.resume:
        # The run's own options, whatever this command line says (as the fine-tuner resumes).
        saved = json.loads((output / "config.json").read_text())
        if saved.get("data") and Path(args.folder).resolve() != Path(saved["data"]):
            raise ValueError(f"--resume: {output} is a run on {saved['data']}, not on {args.folder}; "
                             "pass that folder to resume it")  # fmt: skip
        config = FaceConfig(**{k: v for k, v in saved.items() if k in FaceConfig().to_dict()})
        warn(PROG, f"resuming {output}: its own config.json is used (other training options here are ignored)")
    keras.utils.set_random_seed(config.seed)
    data = str(Path(args.folder).resolve())
    chips = _chips_by_person(args.folder, config.seed)
    # Identities held out of training: the dev pairs that choose the epoch and the threshold.
    people = list(chips)
    order = np.random.default_rng(config.seed).permutation(len(people))
    dev_count = max(2, int(round(config.dev_fraction * len(people))))
    dev_people = [people[i] for i in sorted(order[:dev_count])]
    train_people = [name for name in people if name not in dev_people]
    pairs, same = sample_pairs([len(chips[name]) for name in dev_people], 5, seed=config.seed)
    dev_stack = np.concatenate([chips[name] for name in dev_people]).astype(np.float32)
    if len(train_people) < config.people_per_batch:
        warn(PROG, f"only {len(train_people)} training people (after {len(dev_people)} held out as dev): each batch "
                   f"holds all of them, not --people-per-batch {config.people_per_batch}; add people for a "
                   "face model that generalises")  # fmt: skip
    if not args.json:
        print(f"{len(train_people)} training people ({sum(len(chips[n]) for n in train_people)} faces), "
              f"{len(dev_people)} dev people ({len(dev_stack)} faces, {len(pairs)} dev pairs); "
              f"{config.backbone} ({config.weights}), margin {config.margin}, {config.mining} mining"
              + (f", after {config.warmup_epochs} CosFace warm-up epochs" if config.warmup_epochs else ""))  # fmt: skip

    output.mkdir(parents=True, exist_ok=True)
    model = build_face_embedder(config.backbone, config.weights)
    dev = DevPairs(dev_stack, pairs, same, on_measure=lambda epoch, logs: warn(
        PROG, f"epoch {epoch}: loss {logs.get('loss', float('nan')):.4f}, "
              f"dev 10-fold accuracy {logs['val_pair_accuracy']:.4f}"), embedder=model)  # fmt: skip
    before_distances = dev.distances(model)
    before = verification_report(before_distances, same, best_threshold(before_distances, same))
    before_accuracy = ten_fold_accuracy(before_distances, same)[0]
    start = model.get_weights()
    groups = [chips[n] for n in train_people]
    batch_size = config.people_per_batch * config.images_per_person
    warmup_data = labelled_batches(groups, batch_size, config.seed, config.jitter) if config.warmup_epochs else None
    phases = triplet_phases(model, config.backbone, config.weights, config.learning_rate, config.margin,
                            config.mining, config.epochs, config.head_epochs, config.fine_tune_fraction,
                            config.warmup_epochs, warmup_data, identities=len(train_people))  # fmt: skip
    if state["phase_done"]:
        model.set_weights(finished_phase_model(output, phases, state["phase_done"], compile=False).get_weights())
    else:
        (output / "config.json").write_text(
            to_json({"app": APP, **config.to_dict(), "dev_people": dev_people, "data": data})
        )
        (output / "state.json").write_text(json.dumps(state))
    batches = pk_batches(groups, config.people_per_batch, config.images_per_person,
                         config.seed, config.jitter).repeat()  # fmt: skip
    # steps_per_epoch through a finite view: Keras' fit takes it from the dataset.
    summary = fit_phases(
        model, phases, batches.take(config.steps_per_epoch), None, output, args.patience,
        verbose=keras_verbosity(args), monitor="val_pair_accuracy", mode="max", start_phase=state["phase_done"],
        metric_callbacks=[dev],
    )  # fmt: skip

    # Training that made the dev pairs worse (fine-tuning a face network on a few people can) is not kept.
    distances = dev.distances(model)
    accuracy = ten_fold_accuracy(distances, same)[0]
    if accuracy < before_accuracy:
        accuracy = before_accuracy
        model.set_weights(start)
        distances, summary["kept"] = dev.distances(model), "before training"
    # The threshold and the confidence curve, chosen on the dev pairs, are stored with the model.
    config.threshold = best_threshold(distances, same)
    report = verification_report(distances, same, config.threshold)
    config.confidence_bias, config.confidence_slope = fit_confidence(distances, same)
    config.open_set_threshold = _open_set_threshold(report)
    save_atomically(model, output / "model.keras")
    (output / "config.json").write_text(
        to_json({"app": APP, **config.to_dict(), "dev_people": dev_people, "data": data}, indent=2)
    )
    remove_phase_files(output, phases)
    plot_phase_history(output, phases, monitor="val_pair_accuracy", keys=("loss", "pair_accuracy"), mode="max")
    metrics = {"dev_accuracy_before_training": before_accuracy, "dev_accuracy": accuracy,
               "dev_before_training": before, "dev": report, "phases": summary}  # fmt: skip
    (output / "metrics.json").write_text(to_json(metrics, indent=2))
    emit(args, {**metrics, "output": str(output)},
         f"dev 10-fold accuracy {before_accuracy:.4f} before training, {accuracy:.4f} after "
         + ("(no epoch beat the starting network: its weights were kept)" if summary.get("kept") == "before training"
            else f"(kept: {summary.get('kept')}'s best epoch)")
         + f"; threshold {config.threshold:.3f} -> {output}")  # fmt: skip
