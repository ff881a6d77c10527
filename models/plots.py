"""Pictures a person would rather look at than read: training curves, confusion matrices, error galleries."""

import csv

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history_csv, path):
    """Loss and accuracy per epoch, train vs dev, from one Keras CSVLogger file or several phases in order."""
    files = history_csv if isinstance(history_csv, list | tuple) else [history_csv]
    rows = []
    for name in files:
        with open(name) as file:
            rows.extend(csv.DictReader(file))
    if not rows:
        return None
    plt = _pyplot()
    epochs = list(range(1, len(rows) + 1))
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, label in (("", "train"), ("val_", "dev")):
            if prefix + key in rows[0]:
                axis.plot(epochs, [float(r[prefix + key]) for r in rows], marker=".", label=label)
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


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
    """A grid of images with a caption under each (for error analysis)."""
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
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
