"""Pictures a person would rather look at than read: training curves, confusion matrices, error galleries."""

import csv
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history_csv, path, monitor="val_loss", keys=("loss", "accuracy"), mode="min", loss_names=None):
    """Loss and accuracy per epoch, train vs dev, from one Keras CSVLogger file or several phases in order.

    Phase boundaries are dashed lines, the best epoch (best `monitor` over all phases: the weights a run keeps)
    is marked, and epochs are whole numbers counted from 1. `keys`: the two panels (each train and "val_" dev);
    `mode`: "min" or "max", how `monitor` improves. `loss_names`: one name per file, when phases train with
    two different losses (e.g. CosFace then triplet, on scales 100x apart): the first panel then draws the second
    loss on its own right-hand axis (dotted), its lines never joined to the first's.
    """
    files = history_csv if isinstance(history_csv, list | tuple) else [history_csv]
    rows, boundaries, phase_of = [], [], []
    for index, name in enumerate(files):
        with open(name) as file:
            phase_rows = list(csv.DictReader(file))
        if rows and phase_rows:
            boundaries.append(len(rows) + 0.5)
        rows.extend(phase_rows)
        phase_of += [index] * len(phase_rows)
    if not rows:
        return None
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = list(range(1, len(rows) + 1))
    values = [float(r.get(monitor, "nan") or "nan") for r in rows]
    pick = np.nanargmin if mode == "min" else np.nanargmax
    # The best epoch of all phases: the weights the run keeps (fit_phases keeps an earlier phase that was better).
    best = 1 + int(pick(values)) if not np.all(np.isnan(values)) else None
    # Phases by name (history_<name>.csv) and the epoch each starts at; the best epoch also counted within its phase.
    names = [Path(name).stem.removeprefix("history_") for name in files]
    starts = {names[index]: phase_of.index(index) + 1 for index in dict.fromkeys(phase_of)}
    best_label = f"best epoch ({best})"
    if best is not None and len(starts) > 1:
        phase = names[phase_of[best - 1]]
        best_label = f"best epoch ({best}: {phase} {best - starts[phase] + 1})"
    # With two losses, the rows of each (the first panel draws them on two axes).
    losses = list(dict.fromkeys(loss_names or []))
    split = (
        [[k for k in range(len(rows)) if loss_names[phase_of[k]] == loss] for loss in losses]
        if len(losses) == 2
        else None
    )
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key in zip(axes, keys, strict=True):
        if key == keys[0] and split:
            panels = [(axis, losses[0], split[0]), (axis.twinx(), losses[1], split[1])]
        else:
            panels = [(axis, None, range(len(rows)))]
        lines = []
        for target, loss, shown in panels:
            for color, (prefix, label) in enumerate((("", "train"), ("val_", "dev"))):
                if prefix + key not in rows[0]:
                    continue
                series = [float(rows[k][prefix + key] or "nan") for k in shown]
                second = target is not axis  # the second loss: its own colours and a dotted line
                style = {"marker": ".", "color": f"C{color + 2 * second}", "linestyle": ":" if second else "-"}
                lines += target.plot([epochs[k] for k in shown], series, label=f"{label} ({loss})" if loss else label,
                                     **style)  # fmt: skip
            if loss:
                target.set_ylabel(f"{loss} {key}")
        for index, boundary in enumerate(boundaries):
            lines.append(
                axis.axvline(boundary, color="gray", linestyle="--", label="next phase" if index == 0 else None)
            )
        if best is not None:
            lines.append(axis.axvline(best, color="green", alpha=0.4, linewidth=4, label=best_label))
        if len(starts) > 1:  # each phase's name where it starts
            for name, start in starts.items():
                axis.text(start - 0.45, 0.98, name, transform=axis.get_xaxis_transform(), fontsize=7, color="gray",
                          rotation=90, ha="left", va="top")  # fmt: skip
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_title(key)
        # Two losses: each falls from its own top left corner; "best" (it sees one axis) may cover the second.
        axis.legend(handles=[line for line in lines if not line.get_label().startswith("_")],
                    loc="upper center" if len(panels) > 1 else "best")  # fmt: skip
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def short_name(name, width=22):
    """A file name shortened for a caption by cutting the middle, never its extension: 'IMG_2023…0042.jpg'."""
    name = str(name)
    if len(name) <= width:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    keep = width - len(suffix) - 2
    head = (keep + 1) // 2
    return f"{stem[:head]}…{stem[len(stem) - (keep - head) :]}{dot}{suffix}"


def plot_confusion_matrix(matrix, class_names, path, title="Confusion matrix"):
    """A labelled confusion-matrix heat map (rows: true class, columns: predicted)."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    size = max(4, 0.6 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            axis.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_gallery(images, captions, path, title, columns=6):
    """A grid of images with a caption under each (for error analysis); the folder is created if needed."""
    plt = _pyplot()
    count = max(1, len(images))
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.5 * rows + 0.5), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, caption in zip(axes.flat, images, captions, strict=False):
        axis.imshow(np.asarray(image).astype(np.uint8))
        axis.set_title(caption, fontsize=8)
    if not len(images):
        axes.flat[0].text(0.5, 0.5, "no errors", ha="center", va="center")
    figure.suptitle(title)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_roc(far, tar, path, title="ROC", marks=()):
    """A verification ROC curve (TAR against FAR, FAR on a log scale), with labelled points `marks`:
    [(far, tar, label)]."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    far = np.asarray(far, np.float64)
    axis.plot(np.maximum(far, 1e-4), tar, label="ROC")
    for point_far, point_tar, label in marks:
        axis.scatter([max(point_far, 1e-4)], [point_tar], zorder=3)
        axis.annotate(label, (max(point_far, 1e-4), point_tar), textcoords="offset points", xytext=(6, -12))
    axis.set_xscale("log")
    axis.set_xlim(1e-4, 1.0)
    axis.set_xlabel("false accept rate (different people accepted)")
    axis.set_ylabel("true accept rate (same person accepted)")
    axis.set_title(title)
    axis.grid(alpha=0.3, which="both")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_loss_curves(history, path, title, x="step"):
    """Loss terms per optimisation step or epoch (`x`, log scale): one line per other key of the history rows.
    Returns None for an empty history. Terms that are exactly 0 (e.g. the content cost at the start) are not drawn."""
    if not history:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    steps = [row[x] for row in history]
    for key in [k for k in history[0] if k not in ("step", "epoch")]:
        values = [row[key] if row[key] > 0 else np.nan for row in history]
        axis.plot(steps, values, marker="." if len(history) < 30 else None, label=key)
    axis.set_yscale("log")
    axis.set_xlabel(x)
    axis.set_title(title)
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def class_colour(index):
    """A distinct RGB colour per class index (matplotlib's tab10, cycled)."""
    palette = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ]
    return palette[int(index) % len(palette)]


def draw_detections(image, boxes, classes, scores, class_names, colours=None, thickness=None):
    """A copy of an RGB uint8 image with boxes (xyxy pixels) and "name score" labels drawn by OpenCV.

    `colours`: one RGB tuple per box (default: the class's colour); a score of None draws the name alone.
    """
    import cv2

    canvas = np.ascontiguousarray(image.copy())
    thickness = thickness or max(1, round(max(canvas.shape[:2]) / 300))
    scale = max(0.4, max(canvas.shape[:2]) / 900)
    boxes = np.reshape(boxes, (-1, 4))
    colours = colours if colours is not None else [class_colour(label) for label in classes]
    for box, colour in zip(boxes, colours, strict=True):  # every box first, so that no box hides a label
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
    # Labels lowest score first: the surest box's label ends on top.
    order = np.argsort([s if s is not None else np.inf for s in scores]) if scores is not None else range(len(boxes))
    for index in order:
        box, label, colour = boxes[index], classes[index], colours[index]
        x1, y1 = (int(round(v)) for v in box[:2])
        score = None if scores is None else scores[index]
        text = class_names[int(label)] + ("" if score is None else f" {score:.2f}")
        (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(y1, height + baseline + 2)
        cv2.rectangle(canvas, (x1, top - height - baseline - 2), (x1 + width + 2, top), colour, -1)
        cv2.putText(
            canvas, text, (x1 + 1, top - baseline - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    return canvas


def plot_precision_recall(precision, class_names, path, title="Precision-recall at IoU 0.5"):
    """One curve per class from pycocotools' precision at recall 0, 0.01, ..., 1 (float (101, C); -1: undefined)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 5))
    recall = np.linspace(0, 1, precision.shape[0])
    for index, name in enumerate(class_names):
        values = precision[:, index]
        if np.all(values < 0):
            continue
        ap = float(np.mean(values[values >= 0]))
        axis.plot(
            recall,
            np.where(values >= 0, values, np.nan),
            color=np.array(class_colour(index)) / 255,
            label=f"{name} (AP@0.5 {ap:.3f})",
        )
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
