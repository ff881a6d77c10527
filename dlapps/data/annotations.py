"""Box annotations: Pascal VOC XML, YOLO txt and COCO JSON read into one format, and written back out.

The one format is a list of `Annotation` (image path, boxes as float32 (N, 4) `xmin, ymin, xmax, ymax` in pixels of
the image as our decoding rule shows it, int32 class indices) plus the list of class names. Boxes the annotation
marks as not to be learnt nor counted (VOC `<difficult>1`, COCO `iscrowd: 1`) are kept apart in `ignored_boxes`:
training never sees them and evaluation ignores detections on them (pycocotools' crowd rule). Image sizes always
come from the image file (its header, turned by its EXIF orientation), never from the annotation, which is often
wrong (zeros in VOC files written by some tools). Problems with one file (broken XML or JSON, a box outside the image
or of zero area, a label without its image, a truncated image) are reported through `on_warning` with the file's
name and the line or object number, and the rest is used.
Layouts (`read_detection_folder` finds which):
- VOC: `name.jpg` + `name.xml` side by side, or `images/` + `annotations/` (or `Annotations/`, `xml/`).
- YOLO: `images/` + `labels/` of `name.txt` lines `class cx cy w h` (0-1), class names in `data.yaml` (`names:`)
  or `classes.txt` beside them.
- COCO: one JSON file with `images`, `annotations`, `categories` (boxes `[x, y, width, height]` in pixels, or a
  `segmentation` alone), given directly or as the only `.json` in the folder (or in `annotations/`); images under
  the folder or `images/`.
An image and its label file are paired by name; names that differ only in case are paired with a warning.
"""

import json
import warnings
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, UnidentifiedImageError

from dlapps.data.images import is_image_file, walk_files
from dlapps.data.readers import SPLIT_NAMES as FOLDERS
from dlapps.data.readers import DataError

FORMATS = ("voc", "yolo", "coco")
# A box smaller than this (pixels, either side) after clipping is dropped: nothing can be learnt from it.
MIN_BOX_SIDE = 1.0
# A YOLO coordinate above this is not a 0-1 fraction of the image (slightly above 1 is a box a little outside it).
YOLO_PIXEL_LIMIT = 1.5
# EXIF orientations that turn the image a quarter (its width and height swap when shown upright).
QUARTER_TURNS = (5, 6, 7, 8)


@dataclass
class Annotation:
    """One image and its boxes: `boxes` float32 (N, 4) xmin, ymin, xmax, ymax in pixels; `labels` int32 (N,).

    `ignored_boxes` (K, 4) and `ignored_labels` (K,) are objects marked difficult (VOC) or crowd (COCO): not
    trained on, and evaluation ignores detections matching them. `category_ids` (COCO): the source file's category
    id of each class index, so that writing COCO again keeps them; None elsewhere.
    """

    image: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    ignored_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    ignored_labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    category_ids: tuple | None = None


class ImageHeader(NamedTuple):
    """An image's `width` and `height` as shown upright, and its EXIF `orientation` (1-8; 1 when none)."""

    width: int
    height: int
    orientation: int

    @property
    def stored_size(self):
        """(width, height) as stored in the file, before the EXIF orientation turns it."""
        return (self.height, self.width) if self.orientation in QUARTER_TURNS else (self.width, self.height)


class LabelError(ValueError):
    """A label file that cannot be used as it is; the message says where (line or object) and why."""


def image_header(path):
    """The `ImageHeader` of an image file, checking that the whole file decodes (JPEGs at 1/8 scale, which is fast):
    a truncated or corrupt image is named here and left out, never counted nor used for anchors.

    Raises:
        DataError: not a readable image (missing, not an image, truncated, corrupt).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                orientation = image.getexif().get(0x0112, 1) if image.format == "JPEG" else 1
                if image.format == "JPEG":
                    image.draft(None, (max(1, width // 8), max(1, height // 8)))
                image.load()
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None
    orientation = orientation if orientation in range(1, 9) else 1
    if orientation in QUARTER_TURNS:
        width, height = height, width
    return ImageHeader(width, height, orientation)


def image_size(path):
    """(width, height) of an image as the decoding rule shows it (EXIF orientations 5-8 swap the sides).

    Raises:
        DataError: not a readable image (including a truncated one).
    """
    header = image_header(path)
    return header.width, header.height


def _drop_reason(box, clipped):
    """Why a box is dropped ("" when it is kept)."""
    if not np.all(np.isfinite(box)):
        return "not a number"
    if box[2] < box[0] or box[3] < box[1]:
        return f"reversed coordinates: xmin {box[0]:g}, ymin {box[1]:g}, xmax {box[2]:g}, ymax {box[3]:g}"
    if box[2] - box[0] < MIN_BOX_SIDE or box[3] - box[1] < MIN_BOX_SIDE:
        return f"zero width or height: {box[2] - box[0]:g}x{box[3] - box[1]:g} pixels"
    if np.any(clipped[2:] - clipped[:2] < MIN_BOX_SIDE):
        return "outside the image"
    return ""


def clean_boxes(boxes, width, height, source, on_warning, where=None):
    """Clip boxes to the image and drop those reversed, of (near) zero width or height, or wholly outside it.

    One warning names `source` and each dropped box (by `where`, e.g. "line 3" or "object 2"; "box N" when not
    given) with its reason, another the boxes clipped. Returns (boxes float32 (M, 4), keep bool (N,)).
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    where = list(where) if where is not None else [f"box {index + 1}" for index in range(len(boxes))]
    with np.errstate(invalid="ignore"):
        clipped = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
        outside = np.any(np.abs(clipped - boxes) > 0.5, axis=1)
    reasons = [_drop_reason(box, box_clipped) for box, box_clipped in zip(boxes, clipped, strict=True)]
    keep = np.array([not reason for reason in reasons], bool)
    dropped = [f"{place} ({reason})" for place, reason in zip(where, reasons, strict=True) if reason]
    if dropped:
        on_warning(
            f"{source}: {len(dropped)} box(es) of zero area, reversed or wholly outside the {width}x{height} image, "
            f"dropped: {'; '.join(dropped)}"
        )
    clipped_places = [place for place, out, kept in zip(where, outside, keep, strict=True) if out and kept]
    if clipped_places:
        on_warning(
            f"{source}: {len(clipped_places)} box(es) outside the {width}x{height} image, clipped: "
            + ", ".join(clipped_places)
        )
    return clipped[keep].reshape(-1, 4), keep


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
            record.ignored_labels = (
                remap[record.ignored_labels] if len(record.ignored_labels) else record.ignored_labels
            )
        class_names[:] = order
    return records, list(class_names)


def _make_record(image_path, header, boxes, labels, ignore, places, source, on_warning):
    """An `Annotation` from raw boxes: cleaned (`clean_boxes`), then split into trained and ignored boxes."""
    kept, keep = clean_boxes(boxes, header.width, header.height, source, on_warning, places)
    labels = np.asarray(labels, np.int32).reshape(-1)[keep]
    ignore = np.asarray(ignore, bool).reshape(-1)[keep]
    return Annotation(
        Path(image_path), header.width, header.height, kept[~ignore], labels[~ignore], kept[ignore], labels[ignore]
    )


def _read_label_files(pairs, parse, errors, what, class_names, fixed, on_warning):
    """The loop VOC and YOLO share: each image's header read (an unreadable image is named and left out), its label
    file parsed by `parse(path, header, on_warning)` into (class name, xyxy pixel box, where, ignore) tuples,
    classes indexed, boxes cleaned. A label file raising `LabelError` or one of `errors` is named (with the line or
    object and why) and skipped with its image. Returns (records, unknown class names)."""
    records, unknown = [], set()
    for image_path, label_path in pairs:
        try:
            header = image_header(image_path)
        except DataError as error:
            on_warning(str(error) + ", left out")
            continue
        boxes, labels, ignore, places = [], [], [], []
        try:
            for name, box, where, ignored in parse(label_path, header, on_warning) if label_path is not None else ():
                index = _class_index(name, class_names, fixed)
                if index is None:
                    unknown.add(name)
                    continue
                boxes.append(box)
                labels.append(index)
                ignore.append(ignored)
                places.append(where)
        except LabelError as error:
            on_warning(f"{label_path}: {error}; left out with its image {Path(image_path).name}")
            continue
        except errors as error:
            on_warning(f"{label_path}: not a readable {what} ({error}), skipped with its image")
            continue
        records.append(_make_record(image_path, header, boxes, labels, ignore, places, label_path, on_warning))
    return records, unknown


def _to_upright(box, orientation, stored_width, stored_height):
    """A box drawn on the image as stored, mapped into the image turned upright by EXIF `orientation` (5-8)."""
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:  # Reversed: left as it is, for `clean_boxes` to name.
        return list(box)
    xs, ys = np.array([x1, x2]), np.array([y1, y2])
    new_x, new_y = {
        5: (ys, xs),  # transpose
        6: (stored_height - ys, xs),  # a quarter turn clockwise
        7: (stored_height - ys, stored_width - xs),  # transverse
        8: (ys, stored_width - xs),  # a quarter turn anticlockwise
    }[orientation]
    return [float(new_x.min()), float(new_y.min()), float(new_x.max()), float(new_y.max())]


def _voc_frame(root, header, xml_path, on_warning):
    """The function that maps this XML's boxes into the upright image: the identity, unless the XML `<size>` is the
    stored (pre-rotation) size of an image that EXIF turns a quarter, as tools that ignore EXIF write it; then its
    boxes were drawn on the stored image, and are mapped (with a warning naming the file)."""
    try:
        size = int(float(root.findtext("size/width"))), int(float(root.findtext("size/height")))
    except (TypeError, ValueError):
        return lambda box: box  # No usable <size>: nothing tells which frame the boxes are in.
    stored = header.stored_size
    if header.orientation not in QUARTER_TURNS or stored[0] == stored[1] or size != stored:
        return lambda box: box
    on_warning(
        f"{xml_path}: <size> {size[0]}x{size[1]} is the image as stored, but its EXIF orientation "
        f"{header.orientation} shows it {header.width}x{header.height}; its boxes are turned with it"
    )
    return lambda box: _to_upright(box, header.orientation, *stored)


def _voc_objects(xml_path, header, on_warning):
    """(class name, box, "object N", difficult) of each `<object>` of a VOC XML file, in the upright image."""
    root = ElementTree.parse(xml_path).getroot()
    frame = _voc_frame(root, header, xml_path, on_warning)
    for number, item in enumerate(root.iter("object"), 1):
        box = item.find("bndbox")
        if box is None:
            raise LabelError(f"object {number} has no <bndbox>")
        try:
            coordinates = [float(box.findtext(key)) for key in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            raise LabelError(f"object {number}: <bndbox> needs numbers in xmin, ymin, xmax, ymax") from None
        difficult = (item.findtext("difficult") or "0").strip().lower() in ("1", "true", "yes")
        yield item.findtext("name", "").strip(), frame(coordinates), f"object {number}", difficult


def read_voc(pairs, class_names=None, on_warning=print):
    """Pascal VOC: `pairs` of (image path, XML path or None for a background image).

    Returns (annotations, class names). `class_names` given: boxes of other classes are left out with a warning.
    Objects marked `<difficult>1</difficult>` go to `ignored_boxes` (the VOC protocol neither trains nor counts
    them).
    """
    fixed = class_names is not None
    class_names = list(class_names or [])
    errors = (ElementTree.ParseError, AttributeError, TypeError, ValueError)
    records, unknown = _read_label_files(pairs, _voc_objects, errors, "VOC annotation", class_names, fixed, on_warning)
    return _finish(records, class_names, on_warning, fixed, unknown)


def _yolo_class(text, number, count):
    """The class index written `text` on line `number` ("1" or "1.0"; LabelError otherwise or out of range)."""
    try:
        value = float(text)
    except ValueError:
        raise LabelError(f"line {number}: class {text!r} is not a number") from None
    if not value.is_integer():
        raise LabelError(f"line {number}: class {text} is not a whole number")
    if not 0 <= value < count:
        raise LabelError(f"line {number}: class {text} is out of range (the data set has {count} names, 0-{count - 1})")
    return int(value)


def read_yolo(pairs, names, class_names=None, on_warning=print):
    """YOLO txt: `pairs` of (image path, txt path or None), `names` the data set's class names (index order).

    Lines are `class cx cy w h`, coordinates 0-1 of the image (a class written `1.0` is class 1). A file with a
    malformed line, an out-of-range class, or values that look like pixels (above `YOLO_PIXEL_LIMIT`) is named with
    the line and left out with its image (never kept as a background image).
    """
    fixed = class_names is not None
    class_names = list(class_names if fixed else names)  # YOLO's own class order is the data set's: kept.

    def objects(txt_path, header, on_warning):
        width, height = header.width, header.height
        for number, line in enumerate(Path(txt_path).read_text().splitlines(), 1):
            values = line.split()
            if not values:
                continue
            if len(values) < 5:
                raise LabelError(f"line {number}: {len(values)} value(s), expected 'class cx cy w h'")
            index = _yolo_class(values[0], number, len(names))
            try:
                cx, cy, w, h = map(float, values[1:5])
            except ValueError:
                raise LabelError(f"line {number}: {' '.join(values[1:5])!r} are not numbers") from None
            if max(cx, cy, w, h) > YOLO_PIXEL_LIMIT:
                raise LabelError(
                    f"line {number}: {' '.join(values[1:5])} looks like pixel coordinates, not 0-1 fractions of "
                    f"the {width}x{height} image"
                )
            box = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
            yield names[index], box, f"line {number}", False

    records, unknown = _read_label_files(
        pairs, objects, (ValueError, IndexError), "YOLO label file", class_names, True, on_warning
    )
    return _finish(records, class_names, on_warning, True, unknown)


def _coco_box(item):
    """[xmin, ymin, xmax, ymax] of a COCO annotation: its `bbox`, or the extent of its `segmentation` (polygons, or
    run-length encoded) when it has no `bbox`."""
    if item.get("bbox"):
        x, y, w, h = map(float, item["bbox"])
        return [x, y, x + w, y + h]
    segmentation = item.get("segmentation")
    if isinstance(segmentation, list) and segmentation:
        polygons = segmentation if isinstance(segmentation[0], list) else [segmentation]
        points = np.concatenate([np.asarray(polygon, np.float64).reshape(-1, 2) for polygon in polygons])
        return [*map(float, points.min(axis=0)), *map(float, points.max(axis=0))]
    if isinstance(segmentation, dict):
        from pycocotools import mask

        height, width = segmentation["size"]
        if isinstance(segmentation["counts"], list):  # Uncompressed run lengths: encoded first.
            segmentation = mask.frPyObjects(segmentation, height, width)
        x, y, w, h = map(float, mask.toBbox(segmentation))
        return [x, y, x + w, y + h]
    raise ValueError("no bbox and no segmentation")


def read_coco(json_path, image_root, class_names=None, on_warning=print):
    """COCO JSON detections (`bbox` = [x, y, width, height] in pixels); images looked up under `image_root`.

    Annotations with `iscrowd: 1` go to `ignored_boxes` (never trained; evaluation ignores detections on them). An
    annotation without `bbox` takes the extent of its `segmentation`. Image ids may be numbers or strings; category
    ids may be any (0-based, sparse, unordered): each record keeps them in `category_ids` for `write_annotations`.
    """
    json_path = Path(json_path)
    try:
        data = json.loads(json_path.read_text())
        categories = {c["id"]: c["name"] for c in data["categories"]}
        images = {str(image["id"]): image["file_name"] for image in data["images"]}
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DataError(f"{json_path}: not a COCO detection file ({error})") from None
    fixed = class_names is not None
    class_names = list(class_names) if fixed else sorted(set(categories.values()))
    ids_by_name = {name: category_id for category_id, name in categories.items()}
    category_ids = tuple(ids_by_name.get(name) for name in class_names)
    if None in category_ids or len(ids_by_name) < len(categories):  # Unknown or shared names: no faithful ids.
        category_ids = None
    by_image = {image_id: ([], [], [], []) for image_id in images}
    unknown = set()
    for number, item in enumerate(data.get("annotations", []), 1):
        where = f"annotation {item.get('id', '?')}" if isinstance(item, dict) else f"annotation number {number}"
        try:
            box = _coco_box(item)
            name = categories[item["category_id"]]
            target = by_image[str(item["image_id"])]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            on_warning(f"{json_path}: {where} unreadable ({type(error).__name__}: {error}), left out")
            continue
        if name not in class_names:
            unknown.add(name)
            continue
        for values, value in zip(target, (box, class_names.index(name), bool(item.get("iscrowd", 0)), where)):
            values.append(value)
    records = []
    for image_id, file_name in images.items():
        path = _find_image(image_root, file_name)
        if path is None:
            on_warning(f"{json_path}: image {file_name} not found under {image_root}, its boxes are left out")
            continue
        try:
            header = image_header(path)
        except DataError as error:
            on_warning(str(error) + ", left out")
            continue
        boxes, labels, ignore, places = by_image[image_id]
        record = _make_record(path, header, boxes, labels, ignore, places, f"{json_path} ({file_name})", on_warning)
        record.category_ids = category_ids
        records.append(record)
    if unknown:
        on_warning(f"class(es) the model does not know: {', '.join(sorted(unknown))}; their boxes are left out")
    return records, class_names


def _find_image(root, file_name):
    for candidate in (Path(root) / file_name, Path(root) / "images" / file_name, Path(root) / Path(file_name).name):
        if candidate.is_file():
            return candidate
    return None


def _yaml_names(path):
    """The class names of a YOLO data.yaml, each the string exactly as written: read with PyYAML's BaseLoader, which
    resolves no scalar, so `on`, `yes`, `null`, `1` stay those strings (YAML 1.1 would make them True, None, 1)."""
    import yaml

    try:
        names = yaml.load(path.read_text(), Loader=yaml.BaseLoader).get("names")
    except (yaml.YAMLError, AttributeError) as error:
        raise DataError(f"{path}: not a readable YOLO data.yaml ({error})") from None
    if isinstance(names, dict):  # {0: person, 1: car}: keys are strings here, ordered as numbers.
        try:
            names = [names[key] for key in sorted(names, key=int)]
        except ValueError:
            raise DataError(f"{path}: 'names:' keys must be class numbers 0, 1, ...") from None
    if not names or not isinstance(names, list):
        raise DataError(f"{path}: no 'names:' list of classes")
    return [str(name) for name in names]


def _yolo_names(folder):
    root = _images_part(folder)
    roots = [root.parent, root.parent.parent] if root else []
    for candidate in [folder / "data.yaml", folder / "dataset.yaml", folder.parent / "data.yaml"] + [
        place / name for place in roots for name in ("data.yaml", "dataset.yaml")
    ]:
        if candidate.is_file():
            return _yaml_names(candidate)
    for candidate in (folder / "classes.txt", folder / "labels" / "classes.txt", folder / "obj.names"):
        if candidate.is_file():
            return [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
    raise DataError(f"{folder}: YOLO labels but no class names (add data.yaml with 'names:' or classes.txt)")


def _files_by_stem(files):
    """{stem: [paths]}: two files may share a name in different folders or with different extensions."""
    by_stem = {}
    for path in files:
        by_stem.setdefault(Path(path).stem, []).append(Path(path))
    return by_stem


# The folders a label may sit in beside its image's, as the layouts have it: VOC's devkit (JPEGImages/ and
# Annotations/), images/ with annotations/ (VOC) or labels/ (YOLO, Ultralytics' img2label_paths rule); else the same.
_LABEL_FOLDERS = {"jpegimages": ("annotations",), "images": ("labels", "annotations")}


def _label_folders(image):
    """The folders (lower-case parts) where `image`'s label may be: its own and each layout's twin."""
    parts = [part.lower() for part in image.parent.parts]
    folders = {tuple(parts)}
    for index, part in enumerate(parts):
        for twin in _LABEL_FOLDERS.get(part, ()):
            folders.add(tuple(parts[:index] + [twin] + parts[index + 1 :]))
    return folders


def pair_by_name(images, labels, on_warning=print):
    """Pair image files with label files by name (stem): `images` and `labels` are {stem: [paths]}
    (`_files_by_stem`). A label whose name differs from one image's only in case (`Photo4.jpg`, `photo4.txt`) is
    paired with it, with a warning. Several images of one name (`a/img1.jpg` and `b/img1.jpg`, `photo.jpg` and
    `photo.png`) are told apart by folder (the label's folder is the image's, or its `labels/` or `Annotations/`
    twin); those that cannot be are named and left out, never trained as images without objects. A label with no
    image is named in a warning. Returns [(image path, label path or None)] sorted by image path."""
    by_folded = {}
    for stem in images:
        by_folded.setdefault(stem.lower(), []).append(stem)
    paired, orphans, ambiguous = {}, [], set()
    for stem in sorted(labels):
        for label in labels[stem]:
            stems = [stem] if stem in images else by_folded.get(stem.lower(), [])
            candidates = [image for s in stems for image in images[s] if image not in paired]
            if len(candidates) > 1:
                folder = tuple(part.lower() for part in label.parent.parts)
                near = [image for image in candidates if folder in _label_folders(image)]
                if len(near) != 1:
                    # photo.jpg and photo.png beside one photo.xml, or the same name in folders that do not tell
                    # which one was labelled: never guess, never train them as images without objects.
                    shown = near or candidates
                    one_folder = len({image.parent for image in shown}) == 1
                    names = ", ".join(image.name if one_folder else str(image) for image in shown)
                    on_warning(f"{label}: {len(shown)} images share its name ({names}); all left out: rename them "
                               "so that each has its own label")  # fmt: skip
                    ambiguous.update(shown)
                    continue
                candidates = near
            if len(candidates) != 1:
                orphans.append(label)
                continue
            if candidates[0].stem != stem:
                on_warning(f"{label}: paired with {candidates[0]} (their names differ only in case)")
            paired[candidates[0]] = label
    for path in orphans[:5]:
        on_warning(f"{path}: no image named {path.stem}.*, left out")
    if len(orphans) > 5:
        on_warning(f"{len(orphans) - 5} more annotation files without an image, left out")
    pairs = [(image, paired.get(image)) for paths in images.values() for image in paths if image not in ambiguous]
    return sorted(pairs, key=lambda pair: str(pair[0]))


def _images_part(folder):
    """The innermost `images` folder of `folder` or above it (Ultralytics' `root/images/train`), or None."""
    folder = Path(folder)
    for place in (folder, *folder.parents):
        if place.name.lower() == "images":
            return place
    return None


def yolo_label_twin(folder):
    """Ultralytics' img2label_paths rule for a folder of images: `root/images/train` -> `root/labels/train`, when that
    folder exists and the labels are not inside `folder` itself; else None."""
    images = _images_part(folder)
    if images is None:
        return None
    twin = images.parent / "labels" / Path(folder).relative_to(images)
    return twin if twin.is_dir() else None


def yolo_splits(folder, on_warning=print):
    """The splits a YOLO `data.yaml` (or dataset.yaml) in `folder` names, as {"train": Path, "val": Path, "test":
    Path}: "test" when it names a folder that exists; "val" only when it is a folder that exists and differs from
    train (else a warning saying why, and --dev-fraction of train is held out); {} when the file names no train:
    folder. Paths are relative to the file's `path:` (itself
    relative to the file's folder) or to its folder, as Ultralytics resolves them; split lists and .txt file lists
    are not read."""
    import yaml

    folder = Path(folder)
    found = [folder / name for name in ("data.yaml", "dataset.yaml") if (folder / name).is_file()]
    if not folder.is_dir() or not found:
        return {}
    try:
        spec = yaml.load(found[0].read_text(), Loader=yaml.BaseLoader) or {}
    except yaml.YAMLError:
        return {}  # _yaml_names names the fault when the names are read
    if not isinstance(spec, dict) or not spec.get("train"):
        return {}
    roots = [folder]
    if isinstance(spec.get("path"), str) and spec["path"]:
        roots.insert(0, folder / spec["path"])  # an absolute path: the joined path is that path itself

    def place(split):
        value = spec.get(split)
        places = [root / value for root in roots if isinstance(value, str) and value]
        return next((p for p in places if p.is_dir()), None)

    train = place("train")
    if train is None:
        on_warning(f"{found[0]}: its train: ({spec['train']}) is not a folder here; the whole folder is read and "
                   "--dev-fraction held out")  # fmt: skip
        return {}
    val = place("val")
    if val is None and spec.get("val"):
        on_warning(f"{found[0]}: its val: ({spec['val']}) is not a folder here; --dev-fraction of train: is held out")
    elif val is not None and val.resolve() == train.resolve():
        on_warning(f"{found[0]}: train: and val: are the same folder; --dev-fraction of it is held out as dev")
        val = None
    test = place("test")
    return {"train": train, **({"val": val} if val is not None else {}), **({"test": test} if test else {})}


# Split sub-folders as data sets lay them out (Kaggle's train/ and test/, Roboflow's train/ valid/ test/): the image
# folders' names (dlapps.data.readers), under the detector's key for dev, "val" (Ultralytics' data.yaml word).
SPLIT_NAMES = {"train": FOLDERS["train"], "val": FOLDERS["dev"], "test": FOLDERS["test"]}


def data_splits(folder, on_warning=print):
    """The splits of a detection data folder: a YOLO data.yaml's (`yolo_splits`), else sub-folders named for them
    (`SPLIT_NAMES`: train/, val/ or valid/, test/), as {"train": Path, "val": Path, "test": Path} (the ones found;
    "train" always); {} when the folder has no train split (all of it is one pool)."""
    splits = yolo_splits(folder, on_warning)
    if splits or not Path(folder).is_dir():
        return splits
    subfolders = {p.name.lower(): p for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith(".")}
    for split, names in SPLIT_NAMES.items():
        found = next((subfolders[name] for name in names if name in subfolders), None)
        if found is not None:
            splits[split] = found
    return splits if "train" in splits else {}


def _in_labels(path, folder):
    """A YOLO label file: under a `labels` folder inside `folder` (labels/x.txt, labels/train/x.txt)."""
    return "labels" in Path(path).relative_to(folder).parent.parts


def detect_format(folder):
    """'voc', 'yolo' or 'coco' for a data folder (or COCO .json file); DataError naming the problem otherwise."""
    return _scan(folder)[0]


def _scan(folder):
    """(format, the folder's files, the YOLO label files of its twin `labels/` folder): one walk of each, which
    `read_detection_folder` reads on from. Raises DataError as `detect_format`."""
    folder = Path(folder)
    if folder.is_file():
        if folder.suffix.lower() == ".json":
            return "coco", [folder], []
        raise DataError(f"{folder}: give a folder of images and annotations (or a COCO .json file)")
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    files, dangling = walk_files(folder)
    for link in dangling:
        raise DataError(f"{link}: broken symbolic link")
    kinds = {
        "voc": [p for p in files if p.suffix.lower() == ".xml"],
        "yolo": [p for p in files if p.suffix.lower() == ".txt" and _in_labels(p, folder) and p.name != "classes.txt"],
        "coco": [p for p in files if p.suffix.lower() == ".json"],
    }
    found = [kind for kind in FORMATS if kinds[kind]]
    if found != ["coco"] and not any(is_image_file(p) for p in files):  # COCO files may name images elsewhere.
        raise DataError(f"{folder}: no images in this folder")
    if len(found) > 1:
        counts = ", ".join(f"{len(kinds[kind])} {kind.upper()} files" for kind in found)
        raise DataError(f"{folder}: mixes annotation formats ({counts}); keep one format per folder")
    twin = _twin_labels(folder) if found in ([], ["yolo"]) else []
    if not found and twin:
        return "yolo", files, twin
    if not found:
        raise DataError(f"{folder}: images but no annotations (VOC .xml, YOLO .txt in labels/, or COCO .json)")
    return found[0], files, twin


def _twin_labels(folder):
    """The YOLO label files of `yolo_label_twin(folder)` (root/labels/train for root/images/train), or []."""
    twin = yolo_label_twin(folder)
    files = walk_files(twin)[0] if twin else []
    return [p for p in files if p.suffix.lower() == ".txt" and p.name != "classes.txt"]


def read_detection_folder(folder, class_names=None, on_warning=print):
    """Read a detection data set in any of the three formats; returns (annotations, class names, format).

    Images without annotations are kept as background images (negatives); annotations without images are named
    and left out; label files whose name differs from an image's only in case are paired with it (with a warning);
    unreadable or truncated images are named and left out. Raises DataError when nothing usable is found.
    """
    folder = Path(folder)
    kind, files, twin = _scan(folder)
    if kind == "coco":
        json_files = [p for p in files if p.suffix.lower() == ".json"]
        if len(json_files) != 1:
            raise DataError(f"{folder}: {len(json_files)} COCO .json files; give the one to use")
        root = folder.parent if folder.is_file() else folder
        records, names = read_coco(json_files[0], root, class_names, on_warning)
    else:
        images = _files_by_stem(p for p in files if is_image_file(p))
        suffix = ".xml" if kind == "voc" else ".txt"
        labels = _files_by_stem(
            [
                p
                for p in files
                if p.suffix.lower() == suffix and p.name != "classes.txt" and (kind == "voc" or _in_labels(p, folder))
            ]
            + twin
        )
        pairs = pair_by_name(images, labels, on_warning)
        if kind == "voc":
            records, names = read_voc(pairs, class_names, on_warning)
        else:
            records, names = read_yolo(pairs, _yolo_names(folder), class_names, on_warning)
    if not records:
        raise DataError(f"{folder}: no image with readable annotations")
    if not any(len(record.boxes) for record in records):
        if class_names is not None:  # a model's classes: the usual cause is another data set's model
            raise DataError(f"{folder}: no boxes of the model's classes ({', '.join(class_names)}) in any "
                            "annotation; is it the right model for this data?")  # fmt: skip
        raise DataError(f"{folder}: no boxes in any annotation")
    return records, names, kind


def _category_ids(records, class_names):
    """The COCO category id of each class index: the source file's (kept on the records) when they all agree and
    fit, else 1, 2, ..."""
    kept = {record.category_ids for record in records}
    ids = kept.pop() if len(kept) == 1 else None
    if ids is None or len(ids) != len(class_names) or len(set(ids)) != len(ids):
        return list(range(1, len(class_names) + 1))
    return list(ids)


def _record_boxes(record):
    """(box, label, ignored) for each box of a record, the trained ones first, then the ignored ones."""
    yield from ((box, label, False) for box, label in zip(record.boxes, record.labels, strict=True))
    yield from ((box, label, True) for box, label in zip(record.ignored_boxes, record.ignored_labels, strict=True))


def write_annotations(records, class_names, output, kind):
    """Write `records` to a new (or empty) folder `output` in `kind` format, with symbolic links to the images (so
    the folder is a data set that every reader, and `dlapps detect train`, takes as it is).

    Ignored boxes are written as VOC `<difficult>1` and COCO `iscrowd: 1` (YOLO has no such mark: left out there).
    COCO keeps the source's category ids when the records carry them.

    Images from several folders keep their folders below the source's common folder (train/, val/: the splits stay
    splits, and train/img1.jpg and val/img1.jpg stay apart). A YOLO set gets a data.yaml naming its classes and, when
    its top folders are splits (`SPLIT_NAMES`), its train:, val: and test: folders, as Ultralytics reads it (and
    classes.txt, darknet's list); a COCO set with splits gets one set per split (train/annotations.json beside
    train/images/, as Roboflow exports them).

    Raises:
        DataError: `output` holds files already, or two images of one folder share a name but for the extension.
    """
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise DataError(f"{output}: not empty; convert into a new folder (the source is never overwritten)")
    places = _output_places(records)
    output.mkdir(parents=True, exist_ok=True)
    splits = _split_of(places) if kind == "coco" else None
    if splits:  # one set per split, as Roboflow's COCO export: train/annotations.json beside train/images/...
        for top in dict.fromkeys(splits):
            rows = [i for i, split in enumerate(splits) if split == top]
            part = [Path(*places[i].parts[1:]) for i in rows]
            _write_coco([records[i] for i in rows], part, class_names, output / top)
        return output
    if kind == "coco":
        return _write_coco(records, places, class_names, output)
    images = output if kind == "voc" else output / "images"
    _link_images(records, places, images)
    if kind == "yolo":
        (output / "labels").mkdir(exist_ok=True)
        (output / "classes.txt").write_text("\n".join(class_names) + "\n")
        (output / "data.yaml").write_text(_data_yaml(class_names, places))
        for record, place in zip(records, places, strict=True):
            label = output / "labels" / place.with_suffix(".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(yolo_lines(record.boxes, record.labels, record.width, record.height))
        return output
    for record, place in zip(records, places, strict=True):
        (output / place.with_suffix(".xml")).write_text(voc_xml(record, class_names))
    return output


def _split_of(places):
    """Each place's split folder (its top folder, when every place's top folder is named as a split: `SPLIT_NAMES`),
    or None when the set has no splits."""
    known = {name for names in SPLIT_NAMES.values() for name in names}
    tops = [place.parts[0] if len(place.parts) > 1 else None for place in places]
    return tops if all(top is not None and top.lower() in known for top in tops) else None


def _link_images(records, places, folder):
    """Symbolic links to the records' images at `folder / place`."""
    for record, place in zip(records, places, strict=True):
        (folder / place).parent.mkdir(parents=True, exist_ok=True)
        (folder / place).symlink_to(record.image.resolve())


def _write_coco(records, places, class_names, folder):
    """`folder`/annotations.json for `records`, their images linked at `folder`/images/<place>. Returns the .json's
    path."""
    _link_images(records, places, folder / "images")
    path = folder / "annotations.json"
    ids = _category_ids(records, class_names)
    data = {"images": [], "annotations": [], "categories": []}
    data["categories"] = [{"id": ids[i], "name": name} for i, name in enumerate(class_names)]
    for image_id, (record, place) in enumerate(zip(records, places, strict=True), 1):
        data["images"].append(
            {"id": image_id, "file_name": f"images/{place.as_posix()}", "width": record.width, "height": record.height}
        )
        for box, label, ignored in _record_boxes(record):
            x1, y1, x2, y2 = (float(v) for v in box)
            data["annotations"].append(
                {
                    "id": len(data["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": ids[int(label)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(ignored),
                }
            )
    path.write_text(json.dumps(data))
    return path


def _data_yaml(class_names, places):
    """An Ultralytics data.yaml: its split folders (the images' top folders named as splits) and class names, each
    name a quoted string (JSON's quoting is YAML's), so `on` or `1` stay names."""
    tops = {place.parts[0].lower(): place.parts[0] for place in places if len(place.parts) > 1}
    lines = ["# Written by dlapps detect convert. Paths are relative to this file's folder.", "path: ."]
    for split, names in SPLIT_NAMES.items():
        found = next((tops[name] for name in names if name in tops), None)
        if found:
            lines.append(f"{split}: {json.dumps('images/' + found)}")
    if len(lines) == 2:
        lines.append("# No split folders: add train: and val: (folders below images/) for Ultralytics.")
    elif not any(line.startswith("val:") for line in lines):
        lines.append("# No val split: Ultralytics needs a val: folder; dlapps detect train holds out --dev-fraction.")
    lines.append("names:")
    lines += [f"  {index}: {json.dumps(name)}" for index, name in enumerate(class_names)]
    return "\n".join(lines) + "\n"


def _output_places(records):
    """Each record's image path in a converted set: its name when all the images share one folder, else its path
    below the images' common folder (train/img1.jpg, val/img1.jpg). DataError names two images that would share one
    label file."""
    import os

    places = [Path(record.image.name) for record in records]
    if len({record.image.parent.resolve() for record in records}) > 1:
        common = Path(os.path.commonpath([str(record.image.parent.resolve()) for record in records]))
        places = [record.image.parent.resolve().relative_to(common) / record.image.name for record in records]
    seen = {}
    for record, place in zip(records, places, strict=True):
        key = place.with_suffix("").as_posix().lower()
        if key in seen:
            raise DataError(f"{seen[key]} and {record.image}: one folder, one name but for the extension; their "
                            "labels would be one file: rename one")  # fmt: skip
        seen[key] = record.image
    return places


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
    """A Pascal VOC XML document for one record (with the image's real size; ignored boxes marked difficult)."""
    objects = "".join(
        f"<object><name>{escape(class_names[int(label)])}</name><difficult>{int(ignored)}</difficult><bndbox>"
        f"<xmin>{x1:.1f}</xmin><ymin>{y1:.1f}</ymin><xmax>{x2:.1f}</xmax><ymax>{y2:.1f}</ymax></bndbox></object>"
        for (x1, y1, x2, y2), label, ignored in _record_boxes(record)
    )
    return (
        f"<annotation><filename>{escape(record.image.name)}</filename><path>{escape(str(record.image.resolve()))}"
        f"</path><size><width>{record.width}</width><height>{record.height}</height><depth>3</depth></size>"
        f"{objects}</annotation>\n"
    )
