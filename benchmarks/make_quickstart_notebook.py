import base64
import contextlib
import io
import json
import os
import sys

os.environ["MPLBACKEND"] = "Agg"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
cells = []


def md(text):
    cells.append({"cell_type": "markdown", "metadata": {}, "source": text.strip("\n").splitlines(True)})


def code(text):
    cells.append(
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": text.strip("\n").splitlines(True),
        }
    )


md("""
# dlapps quick start: the five apps from Python

Each app of the course is one class: build it from a shipped model (`from_preset`) or your own folder
(`from_folder`), call its verb on a path, bytes, a PIL image or a NumPy array, and look at the result
(`to_dict()` is what `--json` prints; `plot()` draws it). Run this notebook from the project's folder (it reads
`examples/`); nothing here needs a network or a GPU.
""")
code("""
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

import dlapps

def show(images, titles, size=3.2):
    \"\"\"Images side by side, each with its title.\"\"\"
    figure, axes = plt.subplots(1, len(images), figsize=(size * len(images), size))
    for axis, image, title in zip(np.atleast_1d(axes), images, titles):
        axis.imshow(image)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    plt.show()

print(dlapps.list_presets())
""")
md("""
## 1. Cat or not (course 1: from logistic regression to a pretrained network)

The shipped model is the last rung of the course's ladder: a new head on a frozen EfficientNet-Lite0, plus a veto
when ImageNet sees a dog. `probability` is P(cat); the label is "cat" at or above the model's threshold. Look at
the raccoons: furry, striped, two eyes to the camera, and no dog for the veto to catch; a case for the course's
error analysis (`dlapps cat evaluate` draws every mistake).
""")
code("""
cat = dlapps.CatClassifier.from_preset("cat")
results = list(cat.predict_iter("examples/"))
show([Image.open(r.source).convert("RGB") for r in results],
     [f"{r.label}  P(cat)={r.probability:.2f}" for r in results], size=2.4)
""")
md("""
## 2. Objects: a YOLO-style grid with anchors and non-max suppression (course 4, week 3)

Boxes come back in the photo's own pixels, with class names and scores. The thresholds are the model's, tuned on
dev; pass `score_threshold=` or `iou_threshold=` to `from_preset` to change them.
""")
code("""
detector = dlapps.ObjectDetector.from_preset("raccoon")
found = detector.predict("examples/raccoons.jpg")
print(found.to_dict())
show([found.plot()], [f"{len(found)} box(es), score threshold {detector.score_threshold:.2f}"], size=5)
""")
md("""
## 3. Faces: embeddings, verification and a gallery (course 4, week 4)

Each face is aligned and mapped to a 128-D unit vector; two faces are the same person when their distance is at
most the calibrated threshold. A gallery (a SQLite file) holds enrolled people for `identify`.
""")
code("""
faces = dlapps.FaceVerifier.from_preset()
check = faces.verify("examples/astronaut.png", "tests/data/faces/astronaut_face.jpg")
print(check.to_dict())
show([Image.open("examples/astronaut.png"), Image.open("tests/data/faces/astronaut_face.jpg")],
     [f"distance {check.distance:.3f}", f"threshold {check.threshold:.3f}: same person = {check.same_person}"])
""")
code("""
import tempfile

gallery = faces.gallery(tempfile.mkdtemp() + "/people.db")
faces.enroll(gallery, "Eileen Collins", ["examples/astronaut.png"])
for answer in faces.identify("tests/data/faces/astronaut_face.jpg", gallery):
    print(answer.name, round(answer.distance, 3), answer.top_k)
""")
md("""
## 4. Neural style transfer (course 4, week 4)

A fast model stylises a photo in one pass; `strength` blends with the photo. `StyleTransfer.optimise` runs the
course's optimisation (Gatys et al.) for any painting, slower.
""")
code("""
photo = "examples/chelsea.png"
paintings = ("starry_night", "kandinsky", "great_wave")
stylised = [dlapps.StyleTransfer.from_preset(name).stylise(photo) for name in paintings]
show([Image.open(photo).convert("RGB")] + [s.image for s in stylised], ["photo"] + [s.style for s in stylised])
""")
code("""
painting = dlapps.StyleTransfer.from_preset("starry_night").folder / "style.jpg"  # the fast model's painting
optimised = dlapps.StyleTransfer.optimise(photo, painting, steps=40, max_size=160)
first, last = optimised.history[0], optimised.history[-1]
print(f"style cost {first['style']:.3g} -> {last['style']:.3g}, total {first['total']:.3g} -> {last['total']:.3g}")
show([Image.open(painting), optimised.image], ["the painting", "40 optimisation steps"])
""")
md("""
## 5. Your own pictures: transfer learning (course 3 and 4)

Point `pictures` at a folder with one subfolder per class. Without one, a toy folder is made from two example
photos (crops of the cat and of the rocket), enough to see the API work. The options are `dlapps finetune
train`'s; this quick try trains a small network from scratch, leave them out for the real recipe
(EfficientNet-Lite0 with ImageNet weights).
""")
code("""
from pathlib import Path

pictures = Path("pictures")
if not pictures.is_dir():
    pictures = Path(tempfile.mkdtemp()) / "pictures"
    for name, source in (("cat", "examples/chelsea.png"), ("rocket", "examples/rocket.jpg")):
        (pictures / name).mkdir(parents=True)
        image = Image.open(source).convert("RGB")
        for i in range(8):
            left, top = 12 * i, 6 * i
            image.crop((left, top, left + 200, top + 200)).save(pictures / name / f"{i}.png")
run = Path(tempfile.mkdtemp()) / "quick_try"
classifier = dlapps.ImageClassifier.train(pictures, run, weights="none", image_size=32, fine_tune_epochs=2,
                                          batch_size=8)
print({key: classifier.report[key] for key in ("train_accuracy", "dev_accuracy", "test_accuracy")})
answers = list(classifier.predict_iter(sorted(pictures.glob("*/*"))[::4]))
show([Image.open(a.source) for a in answers], [f"{a.label} {a.probability:.2f}" for a in answers], size=2.2)
""")


def run(execute):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace = {"__name__": "__main__"}
    figures = []
    plt.show = lambda *a, **k: figures.append(plt.gcf()) or None
    count = 0
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        count += 1
        cell["execution_count"] = count
        if not execute:
            continue
        figures.clear()
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec("".join(cell["source"]), namespace)
        outputs = []
        if buffer.getvalue():
            outputs.append({"name": "stdout", "output_type": "stream", "text": buffer.getvalue().splitlines(True)})
        for figure in figures:
            png = io.BytesIO()
            figure.savefig(png, format="png", dpi=60, bbox_inches="tight")
            plt.close(figure)
            outputs.append(
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {"image/png": base64.b64encode(png.getvalue()).decode(), "text/plain": ["<Figure>"]},
                }
            )
        cell["outputs"] = outputs


run(execute=True)
notebook = {
    "cells": cells,
    "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}
Path = __import__("pathlib").Path
Path(sys.argv[1]).write_text(json.dumps(notebook, indent=1) + "\n")
