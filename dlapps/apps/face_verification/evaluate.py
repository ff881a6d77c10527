"""`dlapps faces evaluate` and `calibrate` (numbered pairs files, LFW's protocol) and `dlapps faces export`."""

import shutil
from pathlib import Path

import numpy as np

from dlapps.apps.face_verification.app import APP, PROG, FaceModel, _report_error, embed_files
from dlapps.apps.face_verification.people import read_people
from dlapps.cli.common import (
    EXIT_BAD_INPUT,
    check_output_folder,
    default_output,
    emit,
    to_json,
    warn,
)
from dlapps.data.faces import read_face_chips
from dlapps.data.pairs import read_pairs_lines, sample_pairs
from dlapps.data.readers import DataError
from dlapps.metrics.verification import (
    MIN_PAIRS_10_FOLD,
    best_threshold,
    fit_confidence,
    roc_curve,
    verification_report,
)
from dlapps.plots import plot_gallery, plot_roc, short_name


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
        return {"embeddings": face_model.forward(tf.cast(chips, tf.float32))}  # embed's rule, flip included

    module.serve = serve
    info = {"input": "aligned 150x150 RGB face chips, uint8 (N, 150, 150, 3)",
            "output": "L2-normalised embeddings (N, 128)" + (" (each the unit mean of the chip's and its mirror's)"
                                                             if face_model.config.flip else ""),
            "threshold": face_model.config.threshold}  # fmt: skip
    export_graph(module, serve, None, output, args.format, info)
    result = {"format": args.format, "path": str(output), "bytes": path_size(output), **info}
    emit(args, result, f"wrote {output} ({result['bytes'] / 1e6:.1f} MB): {info['input']} -> {info['output']}")
