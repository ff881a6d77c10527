"""Box annotations: Pascal VOC XML, YOLO txt and COCO JSON read into one format, and written back out.

The one format is a list of `Annotation` (image path, boxes as float32 (N, 4) `xmin, ymin, xmax, ymax` in pixels of
the image as our decoding rule shows it, int32 class indices) plus the list of class names. Image sizes always come
from the image file (its header, turned by its EXIF orientation), never from the annotation, which is often wrong
(zeros in VOC files written by some tools). Problems with one file (broken XML or JSON, a box outside the image or of
zero area, a label without its image) are reported through `on_warning` with the file's name, and the rest is used.
Layouts (`read_detection_folder` finds which):
- VOC: `name.jpg` + `name.xml` side by side, or `images/` + `annotations/` (or `Annotations/`, `xml/`).
- YOLO: `images/` + `labels/` of `name.txt` lines `class cx cy w h` (0-1), class names in `data.yaml` (`names:`)
  or `classes.txt` beside them.
- COCO: one JSON file with `images`, `annotations`, `categories` (boxes `[x, y, width, height]` in pixels), given
  directly or as the only `.json` in the folder (or in `annotations/`); images under the folder or `images/`.
"""

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dlapps.data.images import is_image_file, walk_files
from dlapps.data.readers import DataError

FORMATS = ("voc", "yolo", "coco")
# A box smaller than this (pixels, either side) after clipping is dropped: nothing can be learnt from it.
MIN_BOX_SIDE = 1.0


@dataclass
class Annotation:
    """One image and its boxes: `boxes` float32 (N, 4) xmin, ymin, xmax, ymax in pixels; `labels` int32 (N,)."""

    image: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))


def image_size(path):
    """(width, height) of an image as the decoding rule shows it (EXIF orientations 5-8 swap the sides)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1) if image.format == "JPEG" else 1
    except (OSError, UnidentifiedImageError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def clean_boxes(boxes, width, height, source, on_warning):
    """Clip boxes to the image and drop those of (near) zero area, naming `source` in a warning for each kind.

    Returns (boxes float32 (M, 4), keep bool (N,)).
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    clipped = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
    outside = np.any(np.abs(clipped - boxes) > 0.5, axis=1)
    keep = np.all(clipped[:, 2:] - clipped[:, :2] >= MIN_BOX_SIDE, axis=1)
    if np.any(outside & keep):
        on_warning(f"{source}: {int(np.sum(outside & keep))} box(es) outside the {width}x{height} image, clipped")
    if np.any(~keep):
        on_warning(f"{source}: {int(np.sum(~keep))} box(es) of zero area (or wholly outside the image), dropped")
    return clipped[keep], keep


def _class_index(name, class_names, fixed):
    if name not in class_names:
        if fixed:
            return None
        class_names.append(name)
    return class_names.index(name)


def _finish(records, class_names, on_warning, fixed, unknown):
    if unknown:
        on_warning(
            f"class(es) the model does not know: {', '.join(sorted(unknown))}; their boxes are left out "
            f"(known: {', '.join(class_names)})"
        )
    if not fixed:  # Classes in a stable, sorted order, whatever the file order.
        order = sorted(class_names)
        remap = np.array([order.index(name) for name in class_names], np.int32)
        for record in records:
            record.labels = remap[record.labels] if len(record.labels) else record.labels
        class_names[:] = order
    return records, list(class_names)


def _read_label_files(pairs, parse, errors, what, class_names, fixed, on_warning):
    """The loop VOC and YOLO share: each image's size from its header, its label file parsed by `parse(path, width,
    height)` into (class name, xyxy pixel box) pairs, classes indexed, boxes cleaned. A label file raising one of
    `errors` is named ("not a readable `what`") and skipped with its image. Returns (records, unknown class names)."""
    records, unknown = [], set()
    for image_path, label_path in pairs:
        try:
            width, height = image_size(image_path)
        except DataError as error:
            on_warning(str(error) + ", skipped")
            continue
        boxes, labels = [], []
        try:
            for name, box in parse(label_path, width, height) if label_path is not None else ():
                index = _class_index(name, class_names, fixed)
                if index is None:
                    unknown.add(name)
                    continue
                boxes.append(box)
                labels.append(index)
        except errors as error:
            on_warning(f"{label_path}: not a readable {what} ({error}), skipped with its image")
            continue
        kept, keep = clean_boxes(boxes, width, height, label_path, on_warning)
        records.append(Annotation(Path(image_path), width, height, kept, np.asarray(labels, np.int32)[keep]))
    return records, unknown


def _voc_objects(xml_path, width, height):
    for item in ElementTree.parse(xml_path).getroot().iter("object"):
        box = item.find("bndbox")
        yield item.findtext("name", "").strip(), [float(box.findtext(key)) for key in ("xmin", "ymin", "xmax", "ymax")]


def read_voc(pairs, class_names=None, on_warning=print):
    """Pascal VOC: `pairs` of (image path, XML path or None for a background image).

    Returns (annotations, class names). `class_names` given: boxes of other classes are left out with a warning.
    """
    fixed = class_names is not None
    class_names = list(class_names or [])
    errors = (ElementTree.ParseError, AttributeError, TypeError, ValueError)
    records, unknown = _read_label_files(pairs, _voc_objects, errors, "VOC annotation", class_names, fixed, on_warning)
    return _finish(records, class_names, on_warning, fixed, unknown)


def read_yolo(pairs, names, class_names=None, on_warning=print):
    """YOLO txt: `pairs` of (image path, txt path or None), `names` the data set's class names (index order)."""
    fixed = class_names is not None
    class_names = list(class_names if fixed else names)  # YOLO's own class order is the data set's: kept.

    def objects(txt_path, width, height):
        for line in filter(str.strip, Path(txt_path).read_text().splitlines()):
            values = line.split()
            index, cx, cy, w, h = int(values[0]), *map(float, values[1:5])
            if not 0 <= index < len(names):
                raise ValueError(f"class {index} is not in the {len(names)} names")
            yield (
                names[index],
                [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height],
            )

    records, unknown = _read_label_files(
        pairs, objects, (ValueError, IndexError), "YOLO label file", class_names, True, on_warning
    )
    return _finish(records, class_names, on_warning, True, unknown)


def read_coco(json_path, image_root, class_names=None, on_warning=print):
    """COCO JSON detections (`bbox` = [x, y, width, height] in pixels); images looked up under `image_root`."""
    json_path = Path(json_path)
    try:
        data = json.loads(json_path.read_text())
        categories = {c["id"]: c["name"] for c in data["categories"]}
        images = {image["id"]: image["file_name"] for image in data["images"]}
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DataError(f"{json_path}: not a COCO detection file ({error})") from None
    fixed = class_names is not None
    class_names = list(class_names) if fixed else sorted(set(categories.values()))
    by_image = {image_id: ([], []) for image_id in images}
    unknown = set()
    for item in data.get("annotations", []):
        try:
            x, y, w, h = map(float, item["bbox"])
            name = categories[item["category_id"]]
            target = by_image[item["image_id"]]
        except (KeyError, TypeError, ValueError) as error:
            on_warning(f"{json_path}: annotation {item.get('id', '?')} unreadable ({error}), left out")
            continue
        if name not in class_names:
            unknown.add(name)
            continue
        target[0].append([x, y, x + w, y + h])
        target[1].append(class_names.index(name))
    records = []
    for image_id, file_name in images.items():
        path = _find_image(image_root, file_name)
        if path is None:
            on_warning(f"{json_path}: image {file_name} not found under {image_root}, its boxes are left out")
            continue
        try:
            width, height = image_size(path)
        except DataError as error:
            on_warning(str(error) + ", skipped")
            continue
        boxes, labels = by_image[image_id]
        kept, keep = clean_boxes(boxes, width, height, f"{json_path} ({file_name})", on_warning)
        records.append(Annotation(path, width, height, kept, np.asarray(labels, np.int32)[keep]))
    if unknown:
        on_warning(f"class(es) the model does not know: {', '.join(sorted(unknown))}; their boxes are left out")
    return records, class_names


def _find_image(root, file_name):
    for candidate in (Path(root) / file_name, Path(root) / "images" / file_name, Path(root) / Path(file_name).name):
        if candidate.is_file():
            return candidate
    return None


def _yolo_names(folder):
    for candidate in (folder / "data.yaml", folder / "dataset.yaml", folder.parent / "data.yaml"):
        if candidate.is_file():
            import yaml

            try:
                names = yaml.safe_load(candidate.read_text()).get("names")
            except (yaml.YAMLError, AttributeError) as error:
                raise DataError(f"{candidate}: not a readable YOLO data.yaml ({error})") from None
            if isinstance(names, dict):
                names = [names[key] for key in sorted(names)]
            if not names:
                raise DataError(f"{candidate}: no 'names:' list of classes")
            return [str(name) for name in names]
    for candidate in (folder / "classes.txt", folder / "labels" / "classes.txt", folder / "obj.names"):
        if candidate.is_file():
            return [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
    raise DataError(f"{folder}: YOLO labels but no class names (add data.yaml with 'names:' or classes.txt)")


def _files_by_stem(files):
    return {Path(path).stem: Path(path) for path in files}


def detect_format(folder):
    """'voc', 'yolo' or 'coco' for a data folder (or COCO .json file); DataError naming the problem otherwise."""
    folder = Path(folder)
    if folder.is_file():
        if folder.suffix.lower() == ".json":
            return "coco"
        raise DataError(f"{folder}: give a folder of images and annotations (or a COCO .json file)")
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    files, dangling = walk_files(folder)
    for link in dangling:
        raise DataError(f"{link}: broken symbolic link")
    kinds = {
        "voc": [p for p in files if p.suffix.lower() == ".xml"],
        "yolo": [
            p for p in files if p.suffix.lower() == ".txt" and p.parent.name == "labels" and p.name != "classes.txt"
        ],
        "coco": [p for p in files if p.suffix.lower() == ".json"],
    }
    found = [kind for kind in FORMATS if kinds[kind]]
    if found != ["coco"] and not any(is_image_file(p) for p in files):  # COCO files may name images elsewhere.
        raise DataError(f"{folder}: no images in this folder")
    if len(found) > 1:
        counts = ", ".join(f"{len(kinds[kind])} {kind.upper()} files" for kind in found)
        raise DataError(f"{folder}: mixes annotation formats ({counts}); keep one format per folder")
    if not found:
        raise DataError(f"{folder}: images but no annotations (VOC .xml, YOLO .txt in labels/, or COCO .json)")
    return found[0]


def read_detection_folder(folder, class_names=None, on_warning=print):
    """Read a detection data set in any of the three formats; returns (annotations, class names, format).

    Images without annotations are kept as background images (negatives); annotations without images are named
    and left out. Raises DataError when nothing usable is found.
    """
    folder = Path(folder)
    kind = detect_format(folder)
    if kind == "coco":
        json_files = [folder] if folder.is_file() else [p for p in walk_files(folder)[0] if p.suffix == ".json"]
        if len(json_files) != 1:
            raise DataError(f"{folder}: {len(json_files)} COCO .json files; give the one to use")
        root = folder.parent if folder.is_file() else folder
        records, names = read_coco(json_files[0], root, class_names, on_warning)
    else:
        files = walk_files(folder)[0]
        images = _files_by_stem(p for p in files if is_image_file(p))
        suffix = ".xml" if kind == "voc" else ".txt"
        labels = _files_by_stem(
            p
            for p in files
            if p.suffix.lower() == suffix and p.name != "classes.txt" and (kind == "voc" or p.parent.name == "labels")
        )
        orphans = sorted(set(labels) - set(images))
        for stem in orphans[:5]:
            on_warning(f"{labels[stem]}: no image named {stem}.*, left out")
        if len(orphans) > 5:
            on_warning(f"{folder}: {len(orphans) - 5} more annotation files without an image, left out")
        pairs = [(images[stem], labels.get(stem)) for stem in sorted(images)]
        if kind == "voc":
            records, names = read_voc(pairs, class_names, on_warning)
        else:
            records, names = read_yolo(pairs, _yolo_names(folder), class_names, on_warning)
    if not records:
        raise DataError(f"{folder}: no image with readable annotations")
    if not any(len(record.boxes) for record in records):
        raise DataError(f"{folder}: no boxes in any annotation")
    return records, names, kind


def write_annotations(records, class_names, output, kind):
    """Write `records` to a new (or empty) folder `output` in `kind` format, with symbolic links to the images (so
    the folder is a data set that every reader, and `dlapps detect train`, takes as it is).

    Raises:
        DataError: `output` holds files already, or two images share a name.
    """
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise DataError(f"{output}: not empty; convert into a new folder (the source is never overwritten)")
    names = [record.image.name for record in records]
    if len(set(names)) < len(names):
        raise DataError(f"{output}: two images share a name; cannot lay them out in one folder")
    output.mkdir(parents=True, exist_ok=True)
    images = output if kind == "voc" else output / "images"
    images.mkdir(exist_ok=True)
    for record in records:
        (images / record.image.name).symlink_to(record.image.resolve())
    if kind == "coco":
        data = {"images": [], "annotations": [], "categories": []}
        data["categories"] = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
        for image_id, record in enumerate(records, 1):
            data["images"].append(
                {
                    "id": image_id,
                    "file_name": f"images/{record.image.name}",
                    "width": record.width,
                    "height": record.height,
                }
            )
            for box, label in zip(record.boxes, record.labels, strict=True):
                x1, y1, x2, y2 = (float(v) for v in box)
                data["annotations"].append(
                    {
                        "id": len(data["annotations"]) + 1,
                        "image_id": image_id,
                        "category_id": int(label) + 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0,
                    }
                )
        (output / "annotations.json").write_text(json.dumps(data))
        return output / "annotations.json"
    if kind == "yolo":
        (output / "labels").mkdir(exist_ok=True)
        (output / "classes.txt").write_text("\n".join(class_names) + "\n")
        for record in records:
            (output / "labels" / f"{record.image.stem}.txt").write_text(
                yolo_lines(record.boxes, record.labels, record.width, record.height)
            )
        return output
    for record in records:
        (output / f"{record.image.stem}.xml").write_text(voc_xml(record, class_names))
    return output


def yolo_lines(boxes, labels, width, height):
    """YOLO label text: one `class cx cy w h` line per box, coordinates 0-1 of the image's width and height."""
    lines = []
    for (x1, y1, x2, y2), label in zip(np.asarray(boxes).reshape(-1, 4), labels, strict=True):
        lines.append(
            f"{int(label)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
        )
    return "".join(line + "\n" for line in lines)


def voc_xml(record, class_names):
    """A Pascal VOC XML document for one record (with the image's real size)."""
    objects = "".join(
        f"<object><name>{class_names[int(label)]}</name><difficult>0</difficult><bndbox>"
        f"<xmin>{x1:.1f}</xmin><ymin>{y1:.1f}</ymin><xmax>{x2:.1f}</xmax><ymax>{y2:.1f}</ymax></bndbox></object>"
        for (x1, y1, x2, y2), label in zip(record.boxes, record.labels, strict=True)
    )
    return (
        f"<annotation><filename>{record.image.name}</filename><path>{record.image.resolve()}</path>"
        f"<size><width>{record.width}</width><height>{record.height}</height><depth>3</depth></size>"
        f"{objects}</annotation>\n"
    )
