"""Annotation folders as labelling tools and converters really write them: each fault from a tiny input of its kind.

YOLO classes written `1.0` and pixel coordinates, VOC `difficult` objects and dropped boxes, COCO crowds, polygons,
sparse category ids and string image ids, label files paired by name whatever the case, truncated images, YAML 1.1
class names, and EXIF-rotated JPEGs whose XML gives the stored size.
"""

import io
import json

import numpy as np
import pytest
from PIL import Image

from dlapps.data.annotations import image_size, read_coco, read_detection_folder, write_annotations
from dlapps.data.images import read_image
from dlapps.data.readers import DataError
from dlapps.metrics.detection import coco_evaluate, precision_recall


def _image(path, size=(40, 30), format=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(path, format=format)
    return path


def _voc(name, size, objects):
    """VOC XML; each object (name, (xmin, ymin, xmax, ymax)) or (name, box, difficult)."""
    items = "".join(
        f"<object><name>{item[0]}</name><difficult>{int(item[2]) if len(item) > 2 else 0}</difficult><bndbox>"
        f"<xmin>{item[1][0]}</xmin><ymin>{item[1][1]}</ymin><xmax>{item[1][2]}</xmax><ymax>{item[1][3]}</ymax>"
        "</bndbox></object>"
        for item in objects
    )
    return (
        f"<annotation><filename>{name}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"</size>{items}</annotation>"
    )


def _yolo_folder(root, labels, names="names: [cat, dog]\n"):
    """images/ + labels/ + data.yaml: `labels` maps an image name to its label text (None: no label file)."""
    for name, text in labels.items():
        _image(root / "images" / name, (100, 50))
        if text is not None:
            (root / "labels").mkdir(parents=True, exist_ok=True)
            (root / "labels" / f"{name.rsplit('.', 1)[0]}.txt").write_text(text)
    (root / "data.yaml").write_text(names)
    return root


# === YOLO ===


def test_yolo_class_written_as_a_float_is_that_class(tmp_path):
    _yolo_folder(tmp_path, {"a.png": "1.0 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.1 0.1\n"})
    warnings = []
    records, names, _ = read_detection_folder(tmp_path, on_warning=warnings.append)
    assert names == ["cat", "dog"] and records[0].labels.tolist() == [1, 0]
    np.testing.assert_allclose(records[0].boxes[0], [40, 15, 60, 35])
    assert warnings == []


def test_yolo_pixel_coordinates_and_bad_classes_leave_the_image_out_with_their_line(tmp_path):
    _yolo_folder(
        tmp_path,
        {
            "good.png": "0 0.5 0.5 0.2 0.4\n",
            "pixels.png": "0 0.5 0.5 0.2 0.4\n1 50 25 20 10\n",  # line 2 in pixels
            "class.png": "0 0.5 0.5 0.2 0.4\n\n5 0.5 0.5 0.1 0.1\n",  # line 3: class 5 of 2
            "half.png": "1.5 0.5 0.5 0.1 0.1\n",
            "short.png": "0 0.5 0.5\n",
        },
    )
    warnings = []
    records, _, _ = read_detection_folder(tmp_path, on_warning=warnings.append)
    assert [r.image.name for r in records] == ["good.png"]  # never kept as background images
    text = "\n".join(warnings)
    assert "pixels.txt: line 2: 50 25 20 10 looks like pixel coordinates" in text
    assert "class.txt: line 3: class 5 is out of range" in text
    assert "half.txt: line 1: class 1.5 is not a whole number" in text
    assert "short.txt: line 1: 3 value(s)" in text


def test_yolo_dropped_and_clipped_boxes_are_named_by_line(tmp_path):
    # Line 2: zero width; line 3: a little over the edge (clipped); line 4: negative width (reversed).
    _yolo_folder(tmp_path, {"a.png": "0 0.5 0.5 0.2 0.4\n0 0.5 0.5 0 0.2\n1 0.95 0.5 0.2 0.2\n0 0.5 0.5 -0.1 0.2\n"})
    warnings = []
    records, _, _ = read_detection_folder(tmp_path, on_warning=warnings.append)
    assert len(records[0].boxes) == 2 and records[0].labels.tolist() == [0, 1]
    text = "\n".join(warnings)
    assert "a.txt: 2 box(es) of zero area" in text
    assert "line 2 (zero width or height" in text and "line 4 (reversed coordinates" in text
    assert "box(es) outside the 100x50 image, clipped: line 3" in text


@pytest.mark.parametrize(
    "yaml_text",
    [
        "names: [on, null, yes, 1]\n",
        "path: .\nnames:\n  - on\n  - null\n  - yes\n  - 1\n",
        "names: {0: on, 1: null, 2: yes, 3: 1}\n",
        "names:\n  2: yes\n  0: on\n  3: 1\n  1: null\n",
    ],
)
def test_data_yaml_names_are_the_strings_written(tmp_path, yaml_text):
    _yolo_folder(tmp_path, {"a.png": "1 0.5 0.5 0.2 0.4\n3 0.2 0.2 0.1 0.1\n"}, yaml_text)
    records, names, _ = read_detection_folder(tmp_path)
    assert names == ["on", "null", "yes", "1"]
    assert records[0].labels.tolist() == [1, 3]


# === VOC ===


def test_voc_difficult_objects_are_ignored_not_trained(tmp_path):
    objects = [("cat", (2, 2, 20, 20)), ("dog", (22, 5, 38, 25), True), ("cat", (1, 1, 5, 5), True)]
    _image(tmp_path / "a.jpg")
    (tmp_path / "a.xml").write_text(_voc("a.jpg", (40, 30), objects))
    records, names, _ = read_detection_folder(tmp_path)
    record = records[0]
    assert names == ["cat", "dog"]
    np.testing.assert_allclose(record.boxes, [[2, 2, 20, 20]])
    assert record.labels.tolist() == [0]
    np.testing.assert_allclose(record.ignored_boxes, [[22, 5, 38, 25], [1, 1, 5, 5]])
    assert record.ignored_labels.tolist() == [1, 0]
    # Written out and read back, the marks survive (VOC difficult, COCO crowd).
    for kind in ("voc", "coco"):
        write_annotations(records, names, tmp_path / kind, kind)
        again, again_names, _ = read_detection_folder(tmp_path / kind)
        assert again_names == names and again[0].labels.tolist() == [0]
        np.testing.assert_allclose(again[0].ignored_boxes, record.ignored_boxes)
        assert again[0].ignored_labels.tolist() == [1, 0]


def test_a_set_of_none_of_the_models_classes_names_the_likely_cause(tmp_path):
    """Evaluating the fruit model on raccoons said "no boxes in any annotation" of a set full of boxes."""
    _image(tmp_path / "a.jpg")
    (tmp_path / "a.xml").write_text(_voc("a.jpg", (40, 30), [("raccoon", (1, 1, 20, 20))]))
    warnings = []
    with pytest.raises(DataError, match=r"no boxes of the model's classes \(apple, orange\) in any annotation; is "
                                        "it the right model"):  # fmt: skip
        read_detection_folder(tmp_path, ["apple", "orange"], on_warning=warnings.append)
    assert "does not know: raccoon" in warnings[0]


def test_voc_each_dropped_box_is_named_with_its_object_and_why(tmp_path):
    objects = [
        ("cat", (2, 2, 20, 20)),
        ("cat", (20, 5, 10, 25)),  # 2: reversed
        ("cat", (5, 5, 5, 9)),  # 3: zero width
        ("cat", (50, 40, 60, 45)),  # 4: wholly outside the 40x30 image
        ("cat", (30, 20, 45, 35)),  # 5: partly outside: clipped
    ]
    _image(tmp_path / "a.jpg")
    (tmp_path / "a.xml").write_text(_voc("a.jpg", (40, 30), objects))
    warnings = []
    records, _, _ = read_detection_folder(tmp_path, on_warning=warnings.append)
    np.testing.assert_allclose(records[0].boxes, [[2, 2, 20, 20], [30, 20, 40, 30]])
    text = "\n".join(warnings)
    assert "a.xml: 3 box(es) of zero area" in text
    assert "object 2 (reversed coordinates" in text
    assert "object 3 (zero width or height" in text
    assert "object 4 (outside the image)" in text
    assert "clipped: object 5" in text


def test_difficult_objects_count_for_nothing_in_map():
    truths = [(np.array([[0, 0, 10, 10]], float), np.array([0]))]
    ignored = [(np.array([[20, 20, 30, 30], [40, 40, 50, 50]], float), np.array([0, 1]))]
    # The best-scored detection lands on the difficult object; the true one is found second.
    detections = [(np.array([[20, 20, 30, 30], [0, 0, 10, 10]], float), np.array([0.9, 0.8]), np.array([0, 0]))]
    counted = coco_evaluate(truths, detections, 2)
    assert counted["map50"] < 0.99  # without the mark, the detection on it is a false positive
    result = coco_evaluate(truths, detections, 2, ignored=ignored)
    assert result["map50"] == pytest.approx(1.0) and result["ap50_per_class"] == [pytest.approx(1.0), None]
    at = precision_recall(truths, detections, 0.5, ignored=ignored)
    assert (at["precision"], at["recall"], at["false_positives"]) == (1.0, 1.0, 0)
    assert precision_recall(truths, detections, 0.5)["false_positives"] == 1
    # Only difficult objects: nothing to measure.
    nothing = [(np.zeros((0, 4)), np.zeros((0,), int))]
    assert coco_evaluate(nothing, detections, 2, ignored=ignored)["ap50_per_class"] == [None, None]


def test_dev_map_during_training_ignores_difficult_objects_too(tmp_path):
    """The dev set's difficult objects reach DevMAP and the stored dev figures in canvas pixels, as `evaluate`
    takes them: a detection on one is no false positive."""
    from dlapps.data.detection import cache_images, letterboxed_set

    objects = [("cat", (2, 2, 18, 14)), ("cat", (22, 10, 38, 26), True)]
    _image(tmp_path / "a.jpg", size=(40, 30))
    (tmp_path / "a.xml").write_text(_voc("a.jpg", (40, 30), objects))
    records, _, _ = read_detection_folder(tmp_path)
    _, truths, ignored = letterboxed_set(cache_images(records, 64), [0], 64)
    # 40x30 letterboxed into 64: scale 1.6, 8 px bars above and below.
    np.testing.assert_allclose(truths[0][0], [[3.2, 11.2, 28.8, 30.4]], atol=0.01)
    np.testing.assert_allclose(ignored[0][0], [[35.2, 24.0, 60.8, 49.6]], atol=0.01)
    detections = [(np.concatenate([ignored[0][0], truths[0][0]]), np.array([0.9, 0.8]), np.array([0, 0]))]
    assert coco_evaluate(truths, detections, 1, ignored=ignored)["map50"] == pytest.approx(1.0)
    assert coco_evaluate(truths, detections, 1)["map50"] < 0.99


# === COCO ===


def _coco_set(root, categories, annotations, images=({"id": "img_001", "file_name": "a.jpg"},)):
    _image(root / "a.jpg", (40, 30))
    data = {"images": list(images), "categories": categories, "annotations": annotations}
    (root / "set.json").write_text(json.dumps(data))
    return root / "set.json"


def test_coco_crowds_polygons_sparse_ids_and_string_image_ids(tmp_path):
    categories = [{"id": 7, "name": "zebra"}, {"id": 0, "name": "ant"}, {"id": 3, "name": "mole"}]
    annotations = [
        {"id": 1, "image_id": "img_001", "category_id": 0, "bbox": [1, 2, 10, 10], "iscrowd": 0},
        {"id": 2, "image_id": "img_001", "category_id": 7, "bbox": [20, 5, 10, 20], "iscrowd": 1},
        {"id": 3, "image_id": "img_001", "category_id": 3, "segmentation": [[5, 6, 25, 8, 15, 28]], "iscrowd": 0},
        {"id": 4, "image_id": "img_001", "category_id": 3, "segmentation": [[1, 1, 2, 1], [3, 4, 3, 5, 4, 9]]},
    ]
    json_path = _coco_set(tmp_path / "src", categories, annotations)
    warnings = []
    records, names = read_coco(json_path, json_path.parent, on_warning=warnings.append)
    assert warnings == [] and names == ["ant", "mole", "zebra"]
    record = records[0]
    np.testing.assert_allclose(record.boxes, [[1, 2, 11, 12], [5, 6, 25, 28], [1, 1, 4, 9]])
    assert record.labels.tolist() == [0, 1, 1]
    np.testing.assert_allclose(record.ignored_boxes, [[20, 5, 30, 25]])  # the crowd: never trained
    assert record.ignored_labels.tolist() == [2]
    written = write_annotations(records, names, tmp_path / "out", "coco")
    data = json.loads(written.read_text())
    assert [(c["id"], c["name"]) for c in data["categories"]] == [(0, "ant"), (3, "mole"), (7, "zebra")]
    again, again_names, _ = read_detection_folder(tmp_path / "out")
    assert again_names == names
    np.testing.assert_allclose(again[0].boxes, record.boxes)
    assert again[0].labels.tolist() == record.labels.tolist()
    np.testing.assert_allclose(again[0].ignored_boxes, record.ignored_boxes)
    assert again[0].category_ids == (0, 3, 7)


def test_a_coco_file_whose_name_ends_in_capitals_is_read(tmp_path):
    """A folder holding `SET.JSON` was found to be COCO, then refused as holding "0 COCO .json files"."""
    json_path = _coco_set(tmp_path, [{"id": 1, "name": "cat"}], [{"id": 1, "image_id": "img_001", "category_id": 1,
                                                                   "bbox": [1, 2, 10, 10]}])  # fmt: skip
    json_path.rename(tmp_path / "SET.JSON")
    for given in (tmp_path, tmp_path / "SET.JSON"):
        records, names, kind = read_detection_folder(given)
        assert (kind, names, records[0].boxes.tolist()) == ("coco", ["cat"], [[1, 2, 11, 12]])


def test_coco_unreadable_annotation_is_named_and_the_rest_used(tmp_path):
    categories = [{"id": 1, "name": "cat"}]
    annotations = [
        {"id": 1, "image_id": 5, "category_id": 1, "bbox": [1, 2, 10, 10]},
        {"id": 2, "image_id": 5, "category_id": 1},  # neither bbox nor segmentation
    ]
    json_path = _coco_set(tmp_path, categories, annotations, [{"id": 5, "file_name": "a.jpg"}])
    warnings = []
    records, _ = read_coco(json_path, tmp_path, on_warning=warnings.append)
    assert len(records[0].boxes) == 1 and "annotation 2 unreadable" in warnings[0]


# === Pairing and images ===


def test_label_files_differing_only_in_case_are_paired(tmp_path):
    voc = tmp_path / "voc"
    _image(voc / "Photo4.jpg")
    (voc / "photo4.xml").write_text(_voc("Photo4.jpg", (40, 30), [("cat", (2, 2, 20, 20))]))
    _image(voc / "b.jpg")
    (voc / "b.xml").write_text(_voc("b.jpg", (40, 30), [("cat", (2, 2, 20, 20))]))
    (voc / "lost.xml").write_text(_voc("lost.jpg", (40, 30), [("cat", (2, 2, 20, 20))]))
    warnings = []
    records, _, _ = read_detection_folder(voc, on_warning=warnings.append)
    assert {r.image.name: len(r.boxes) for r in records} == {"Photo4.jpg": 1, "b.jpg": 1}
    text = "\n".join(warnings)
    assert "photo4.xml: paired with" in text and "Photo4.jpg (their names differ only in case)" in text
    assert "lost.xml: no image named lost" in text
    yolo = _yolo_folder(tmp_path / "yolo", {"Photo4.png": None, "b.png": "0 0.5 0.5 0.2 0.4\n"})
    (yolo / "labels" / "photo4.txt").write_text("1 0.5 0.5 0.2 0.4\n")
    records, _, _ = read_detection_folder(yolo, on_warning=warnings.append)
    assert {r.image.name: r.labels.tolist() for r in records} == {"Photo4.png": [1], "b.png": [0]}


def test_truncated_image_is_named_and_left_out(tmp_path):
    _image(tmp_path / "good.jpg")
    (tmp_path / "good.xml").write_text(_voc("good.jpg", (40, 30), [("cat", (2, 2, 20, 20))]))
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "cut.xml").write_text(_voc("cut.jpg", (160, 120), [("dog", (2, 2, 100, 100))]))
    with pytest.raises(DataError, match="cut.jpg: not a readable image"):
        image_size(tmp_path / "cut.jpg")
    warnings = []
    records, names, _ = read_detection_folder(tmp_path, on_warning=warnings.append)
    assert [r.image.name for r in records] == ["good.jpg"] and names == ["cat"]  # not counted, no anchors
    assert any("cut.jpg: not a readable image" in warning for warning in warnings)


# === EXIF orientation ===


def _rotated_jpeg(path, stored_size, red_box, orientation):
    """A JPEG stored `stored_size` (width, height) with a red rectangle at `red_box`, and an EXIF orientation."""
    pixels = np.zeros((stored_size[1], stored_size[0], 3), np.uint8)
    x1, y1, x2, y2 = red_box
    pixels[y1:y2, x1:x2] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif, quality=95)


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_exif_rotated_jpeg_boxes_drawn_on_the_stored_image_land_on_their_object(tmp_path, orientation):
    stored, red = (64, 48), (8, 4, 24, 20)
    _rotated_jpeg(tmp_path / "turned.jpg", stored, red, orientation)
    (tmp_path / "turned.xml").write_text(_voc("turned.jpg", stored, [("cat", red)]))  # the tool ignored EXIF
    warnings = []
    records, _, _ = read_detection_folder(tmp_path, on_warning=warnings.append)
    record = records[0]
    upright = read_image(record.image)  # the project's decoder turns the image upright
    assert (record.width, record.height) == (48, 64) == (upright.shape[1], upright.shape[0])
    x1, y1, x2, y2 = np.round(record.boxes[0]).astype(int)
    assert (x2 - x1, y2 - y1) == (16, 16)
    inside = upright[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].astype(int)
    assert inside[..., 0].min() > 200 and inside[..., 1:].max() < 60  # the box is on the red rectangle
    assert np.sum(upright[..., 0] > 128) == pytest.approx(16 * 16, rel=0.2)  # and it is all of it
    assert any("turned.xml" in w and f"EXIF orientation {orientation}" in w for w in warnings)


def test_exif_rotated_jpeg_labelled_upright_is_kept_as_it_is(tmp_path):
    _rotated_jpeg(tmp_path / "turned.jpg", (64, 48), (8, 4, 24, 20), 6)
    upright_box = (28, 8, 44, 24)  # where the red rectangle shows once turned a quarter clockwise
    (tmp_path / "turned.xml").write_text(_voc("turned.jpg", (48, 64), [("cat", upright_box)]))
    warnings = []
    records, _, _ = read_detection_folder(tmp_path, on_warning=warnings.append)
    np.testing.assert_allclose(records[0].boxes, [upright_box])
    assert warnings == []
    upright = read_image(records[0].image)
    assert upright[16, 36, 0] > 200 and upright[16, 36, 1] < 60


def test_images_of_one_name_in_two_folders_keep_their_own_labels(tmp_path):
    # a/img1.jpg and b/img1.jpg, each with its own VOC file beside it: both kept, each with its own box.
    for folder, box in (("a", (2, 2, 20, 20)), ("b", (10, 5, 30, 25))):
        _image(tmp_path / folder / "img1.jpg")
        (tmp_path / folder / "img1.xml").write_text(_voc("img1.jpg", (40, 30), [("cat", box)]))
    records, _, _ = read_detection_folder(tmp_path)
    boxes = {record.image.parent.name: record.boxes.tolist() for record in records}
    assert boxes == {"a": [[2, 2, 20, 20]], "b": [[10, 5, 30, 25]]}
    # YOLO's layout: images/train and images/val each with a labels/ twin.
    root = tmp_path / "yolo"
    (root / "data.yaml").parent.mkdir(parents=True)
    (root / "data.yaml").write_text("names: [cat]\n")
    for split, line in (("train", "0 0.5 0.5 0.2 0.2"), ("val", "0 0.25 0.25 0.1 0.1")):
        _image(root / "images" / split / "img1.jpg")
        (root / "labels" / split).mkdir(parents=True)
        (root / "labels" / split / "img1.txt").write_text(line + "\n")
    records, _, _ = read_detection_folder(root)
    centres = {r.image.parent.name: ((r.boxes[0, :2] + r.boxes[0, 2:]) / 2).tolist() for r in records}
    assert centres == {"train": [20.0, 15.0], "val": [10.0, 7.5]}
    # VOC's images/ + annotations/ layout, split the same way.
    voc = tmp_path / "voc"
    for split, box in (("train", (2, 2, 20, 20)), ("val", (10, 5, 30, 25))):
        _image(voc / "images" / split / "dup.jpg")
        (voc / "annotations" / split).mkdir(parents=True)
        (voc / "annotations" / split / "dup.xml").write_text(_voc("dup.jpg", (40, 30), [("cat", box)]))
    warnings = []
    records, _, _ = read_detection_folder(voc, on_warning=warnings.append)
    assert {r.image.parent.name: r.boxes.tolist() for r in records} == {
        "train": [[2, 2, 20, 20]],
        "val": [[10, 5, 30, 25]],
    }
    assert not warnings


def test_two_images_of_one_name_beside_one_label_are_named_and_left_out(tmp_path):
    _image(tmp_path / "photo.jpg")
    _image(tmp_path / "photo.png")
    _image(tmp_path / "other.jpg")
    (tmp_path / "photo.xml").write_text(_voc("photo.jpg", (40, 30), [("cat", (2, 2, 20, 20))]))
    (tmp_path / "other.xml").write_text(_voc("other.jpg", (40, 30), [("cat", (5, 5, 25, 25))]))
    warnings = []
    records, _, _ = read_detection_folder(tmp_path, on_warning=warnings.append)
    assert [record.image.name for record in records] == ["other.jpg"]  # neither photo is trained as a negative
    assert any("2 images share its name (photo.jpg, photo.png); all left out" in w for w in warnings)


def _ultralytics_set(root, yaml_text):
    """root/images/{train,val} + root/labels/{train,val} + data.yaml: Ultralytics' layout."""
    for split, names in (("train", ("a", "b", "c")), ("val", ("d",))):
        for name in names:
            _image(root / "images" / split / f"{name}.jpg", (100, 50))
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / f"{name}.txt").write_text("1 0.5 0.5 0.2 0.4\n")
    (root / "data.yaml").write_text(yaml_text)
    return root


def test_a_yolo_images_split_folder_finds_its_labels_and_names_as_ultralytics_does(tmp_path):
    """`detect train root/images/train`: the labels are in root/labels/train (img2label_paths), the names in
    root/data.yaml; it was refused as 'images but no annotations'."""
    root = _ultralytics_set(tmp_path / "set", "names: [cat, dog]\n")
    records, names, kind = read_detection_folder(root / "images" / "train", on_warning=pytest.fail)
    assert kind == "yolo" and names == ["cat", "dog"]
    assert [r.image.name for r in records] == ["a.jpg", "b.jpg", "c.jpg"]
    assert all(r.labels.tolist() == [1] for r in records)


def test_data_yaml_splits_are_the_train_and_dev_sets(tmp_path):
    from dlapps.data.annotations import yolo_splits

    root = _ultralytics_set(tmp_path / "set", "path: .\ntrain: images/train\nval: images/val\nnames: [cat, dog]\n")
    assert yolo_splits(root, on_warning=pytest.fail) == {"train": root / "images/train", "val": root / "images/val"}
    # Without a usable val:, train: is still the training set (val/ on disk is never pooled into it).
    warnings, train_only = [], {"train": root / "images/train"}
    (root / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [cat, dog]\n")  # coco128's
    assert yolo_splits(root, warnings.append) == train_only and "same folder" in warnings[0]
    (root / "data.yaml").write_text("train: images/train\nval: lists/val.txt\nnames: [cat, dog]\n")
    assert yolo_splits(root, warnings.append) == train_only and "not a folder here" in warnings[1]
    (root / "data.yaml").write_text("train: images/train\nnames: [cat, dog]\n")
    assert yolo_splits(root, warnings.append) == train_only and len(warnings) == 2
    (root / "data.yaml").write_text("names: [cat, dog]\n")  # no splits named: nothing said
    assert yolo_splits(root, warnings.append) == {} and len(warnings) == 2


def test_split_folders_are_the_train_dev_and_left_out_test_sets(tmp_path):
    """Kaggle's train/ + test/ and Roboflow's train/ valid/ test/: test images were pooled into training."""
    from dlapps.data.annotations import data_splits

    for name in ("train", "valid", "test"):
        (tmp_path / "set" / name).mkdir(parents=True)
    splits = data_splits(tmp_path / "set", on_warning=pytest.fail)
    assert splits == {"train": tmp_path / "set/train", "val": tmp_path / "set/valid", "test": tmp_path / "set/test"}
    (tmp_path / "plain" / "apples").mkdir(parents=True)  # no split folders: one pool
    assert data_splits(tmp_path / "plain", on_warning=pytest.fail) == {}


@pytest.mark.parametrize("kind", ["voc", "yolo", "coco"])
def test_convert_keeps_images_of_one_name_apart_by_their_folders(tmp_path, kind):
    """train/img1.jpg and val/img1.jpg: `convert` refused the set, naming its output folder; each now keeps its
    folder and its own boxes, and the converted set reads back the same."""
    for split, box in (("train", (2, 2, 20, 20)), ("val", (10, 5, 30, 25))):
        _image(tmp_path / "src" / split / "img1.jpg")
        (tmp_path / "src" / split / "img1.xml").write_text(_voc("img1.jpg", (40, 30), [("cat", box)]))
    records, names, _ = read_detection_folder(tmp_path / "src", on_warning=pytest.fail)
    write_annotations(records, names, tmp_path / kind, kind)
    parts = [tmp_path / kind / split for split in ("train", "val")] if kind == "coco" else [tmp_path / kind]
    again = []
    for part in parts:  # COCO: one set per split
        read, again_names, again_kind = read_detection_folder(part, on_warning=pytest.fail)
        assert again_kind == kind and again_names == names
        again += read
    assert len(again) == 2
    boxes = {(record.image.parent if kind != "coco" else record.image.parent.parent).name: record.boxes
             for record in again}  # fmt: skip
    assert sorted(boxes) == ["train", "val"]  # YOLO's 0-1 fractions: float32 rounding
    np.testing.assert_allclose(boxes["train"], [[2, 2, 20, 20]], atol=1e-4)
    np.testing.assert_allclose(boxes["val"], [[10, 5, 30, 25]], atol=1e-4)


def test_convert_keeps_a_sets_splits_and_writes_a_data_yaml(tmp_path):
    """A stranger's train/ and val/ set (no name shared) came out of `convert --to yolo` as one flat folder with a
    classes.txt and no data.yaml: its splits were lost. Names YAML would read as other things stay names."""
    from dlapps.data.annotations import data_splits

    for split, name in (("train", "a.jpg"), ("val", "b.jpg"), ("test", "c.jpg")):
        _image(tmp_path / "src" / split / name)
        (tmp_path / "src" / split / name).with_suffix(".xml").write_text(_voc(name, (40, 30), [("on", (2, 2, 20, 20))]))
    records, names, _ = read_detection_folder(tmp_path / "src", on_warning=pytest.fail)
    for kind, where in (("yolo", "images/{}"), ("coco", "{}"), ("voc", "{}")):
        write_annotations(records, names, tmp_path / kind, kind)
        splits = data_splits(tmp_path / kind, on_warning=pytest.fail)
        assert {key: path.relative_to(tmp_path / kind).as_posix() for key, path in splits.items()} == {
            split: where.format(split) for split in ("train", "val", "test")
        }, kind
        again, again_names, again_kind = read_detection_folder(splits["val"], on_warning=pytest.fail)
        assert again_kind == kind and again_names == ["on"] and [record.image.name for record in again] == ["b.jpg"]


def test_convert_names_two_images_that_would_share_a_label(tmp_path):
    from dlapps.data.annotations import Annotation

    records = [Annotation(_image(tmp_path / f"photo.{ext}"), 40, 30, np.zeros((0, 4)), np.zeros(0, int))
               for ext in ("jpg", "png")]  # fmt: skip
    with pytest.raises(DataError, match=r"photo.jpg and .*photo.png: one folder"):
        write_annotations(records, ["cat"], tmp_path / "out", "yolo")


def test_evaluate_names_training_images_wherever_the_model_was_trained_from(tmp_path, monkeypatch):
    """A stranger saw no warning evaluating a model's own training images: the stored path was relative to another
    folder, or the model was trained on the set's root and evaluated on its train split."""
    from dlapps.apps.object_detector.evaluate import _trained_folder

    root = tmp_path / "set"
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True)
    assert _trained_folder((root / "train").resolve(), str(root)) == (root / "train").resolve()
    assert _trained_folder((root / "val").resolve(), str(root)) == (root / "val").resolve()
    assert _trained_folder((root / "test").resolve(), str(root)) is None  # left out of training: a test
    assert _trained_folder(root.resolve(), str(root / "train")) == (root / "train").resolve()  # holds them
    monkeypatch.chdir(tmp_path)  # a relative path, from where it was trained
    assert _trained_folder((root / "train").resolve(), "set") == (root / "train").resolve()
    assert _trained_folder((root / "train").resolve(), "elsewhere/set") is None
