"""Detection maths on hand-made boxes: IoU, anchors by k-means, targets, decoding, NMS, augmentation, readers."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dlapps.data.annotations import detect_format, read_detection_folder, write_annotations
from dlapps.data.readers import DataError
from dlapps.metrics.detection import box_iou, coco_evaluate, kmeans_anchors, precision_recall, shape_iou
from dlapps.tasks.yolo_detector import (
    STRIDES,
    YoloLoss,
    box_iou_elementwise,
    decode_raw,
    encode_targets,
    postprocess,
    split_anchors,
)

ANCHORS = np.array(
    [[0.05, 0.05], [0.1, 0.05], [0.05, 0.1], [0.2, 0.2], [0.3, 0.15], [0.15, 0.3], [0.5, 0.5], [0.8, 0.4], [0.4, 0.8]],
    np.float32,
)


def test_box_iou_exact():
    a = [[0, 0, 2, 2]]
    b = [[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 3, 3], [0, 0, 0, 5]]
    np.testing.assert_allclose(box_iou(a, b), [[1 / 7, 1.0, 0.0, 0.0]])
    np.testing.assert_allclose(shape_iou([[2, 2]], [[1, 4], [2, 2]]), [[2 / 6, 1.0]])


def test_giou_and_ciou_exact():
    a = tf.constant([[0.0, 0.0, 2.0, 2.0]])
    b = tf.constant([[1.0, 1.0, 3.0, 3.0]])
    # IoU 1/7; enclosing box 3x3 = 9, union 7: GIoU = 1/7 - 2/9.
    np.testing.assert_allclose(box_iou_elementwise(a, b, "iou").numpy(), [1 / 7], rtol=1e-6)
    np.testing.assert_allclose(box_iou_elementwise(a, b, "giou").numpy(), [1 / 7 - 2 / 9], rtol=1e-6)
    # Same aspect ratio: CIoU = IoU - centre distance^2 / diagonal^2 = 1/7 - 2/18.
    np.testing.assert_allclose(box_iou_elementwise(a, b, "ciou").numpy(), [1 / 7 - 2 / 18], rtol=1e-5)


def test_objectness_losses_exact():
    """One scale of a 2 x 2 grid, one anchor, one class: the positive cell's raw box decodes exactly to its truth
    (CIoU 1, so the box term is 0 and the objectness target 1); one class, so no class term."""
    y_true = np.zeros((1, 2, 2, 1, 6), np.float32)
    y_true[0, 0, 0, 0] = [0.25, 0.25, 0.5, 0.5, 1.0, 1.0]  # centre x, y, w, h, positive, class
    logits = np.array([0.5, -1.0, 0.0, 2.0], np.float32)  # objectness: the positive, then three negatives
    y_pred = np.zeros((1, 2, 2, 1, 6), np.float32)  # xy and wh logits 0: (2 x 0.5 - 0.5 + 0) / 2 = 0.25; 1^2 x 0.5
    y_pred[..., 4] = logits.reshape(1, 2, 2, 1)
    y_pred[..., 5] = 3.0
    bce = np.maximum(logits, 0) - logits * [1, 0, 0, 0] + np.log1p(np.exp(-np.abs(logits)))
    negatives = 0.75 * (1 / (1 + np.exp(-logits[1:]))) ** 2 * bce[1:]
    cases = {"varifocal": 0.02 * (1.0 * bce[0] + negatives.sum()), "bce": 1.0 * (64 / 640) ** 2 * 0.4 * bce.mean()}
    for objectness, expected in cases.items():
        loss = YoloLoss([[0.5, 0.5]], 0.4, 64, 1, objectness=objectness)
        assert float(loss(tf.constant(y_true), tf.constant(y_pred))) == pytest.approx(expected, rel=1e-5)
    # Easy background weighs less under the varifocal loss: its share of the objectness term falls.
    assert negatives.sum() / (bce[0] + negatives.sum()) < bce[1:].sum() / bce.sum()
    with pytest.raises(ValueError, match="objectness must be one of varifocal, bce"):
        YoloLoss([[0.5, 0.5]], 0.4, 64, 1, objectness="focal")


def test_kmeans_finds_the_two_shapes():
    sizes = [[10, 20]] * 5 + [[11, 21]] * 5 + [[40, 40]] * 6
    anchors, mean_iou = kmeans_anchors(sizes, 2, seed=3)
    np.testing.assert_allclose(anchors, [[10.5, 20.5], [40, 40]])  # Medians, sorted by area.
    expected = np.mean(
        [shape_iou([[10, 20]], [[10.5, 20.5]])[0, 0]] * 5
        + [shape_iou([[11, 21]], [[10.5, 20.5]])[0, 0]] * 5
        + [1.0] * 6
    )  # noqa: E501
    assert mean_iou == pytest.approx(expected)
    with pytest.raises(ValueError, match="at least k=3"):
        kmeans_anchors([[1, 1], [2, 2]], 3)


def _raw_from_targets(targets, anchors):
    """Raw head outputs that decode to the targets' boxes at every positive cell (the inverse of decode_raw)."""
    raws = []
    for target, group in zip(targets, split_anchors(anchors), strict=True):
        grid = target.shape[0]
        cells = np.stack(np.meshgrid(np.arange(grid), np.arange(grid)), -1)[:, :, None, :]
        offset = np.clip((target[..., 0:2] * grid - cells + 0.5) / 2, 1e-6, 1 - 1e-6)
        scale = np.clip(np.sqrt(np.maximum(target[..., 2:4], 1e-9) / group) / 2, 1e-6, 1 - 1e-6)
        raw = np.concatenate(
            [
                np.log(offset / (1 - offset)),
                np.log(scale / (1 - scale)),
                np.where(target[..., 4:5] > 0, 10.0, -10.0),
                np.where(target[..., 5:] > 0, 10.0, -10.0),
            ],
            -1,
        )
        raws.append(raw[None].astype(np.float32))
    return raws


def test_targets_encode_then_decode_to_the_boxes():
    boxes = np.array([[0.10, 0.20, 0.16, 0.24], [0.40, 0.30, 0.70, 0.65], [0.0, 0.0, 0.0, 0.0]], np.float32)
    labels = np.array([1, 0, 0], np.int32)
    targets = [t.numpy() for t in encode_targets(boxes, labels, ANCHORS, 320, 2)]
    assert [t.shape for t in targets] == [(320 // s, 320 // s, 3, 7) for s in STRIDES]
    # The small box lives on stride 8 (its best anchor, 0.05 x 0.05 ... 0.1 x 0.05), the big one on strides 16-32.
    small = targets[0][..., 4] > 0
    cell_y, cell_x, _ = np.nonzero(small)
    assert set(zip(cell_y.tolist(), cell_x.tolist())) >= {(int(0.22 * 40), int(0.13 * 40))}  # the centre cell
    assert len(set(zip(cell_y.tolist(), cell_x.tolist()))) == 3  # and its two nearest neighbours
    np.testing.assert_allclose(targets[0][small][:, :4], [[0.13, 0.22, 0.06, 0.04]] * int(small.sum()), atol=1e-6)
    assert np.all(targets[0][small][:, 5:] == [0, 1])
    decoded = set()
    for raw, group in zip(_raw_from_targets(targets, ANCHORS), split_anchors(ANCHORS), strict=True):
        xy, wh, objectness, _ = decode_raw(tf.constant(raw), group)
        positive = objectness.numpy()[0] > 0
        for centre, size in zip(xy.numpy()[0][positive], wh.numpy()[0][positive], strict=True):
            decoded.add(tuple(np.round(np.concatenate([centre - size / 2, centre + size / 2]), 5)))
    assert decoded == {tuple(np.round(box, 5)) for box in boxes[:2]}


def test_nms_per_class_and_class_agnostic():
    # Two overlapping boxes of class 0 (scores ~0.99 and ~0.73), one on the same place of class 1 (~0.5).
    target = np.zeros((1, 320 // 8, 320 // 8, 3, 7), np.float32)
    raws = [np.full((1, 320 // s, 320 // s, 3, 7), -20.0, np.float32) for s in STRIDES]
    raws[1][0, 10, 10, 0, :] = [0, 0, 0, 0, 8, 8, -20]  # centre (10.5/20), wh = anchor (0.2, 0.2)
    raws[1][0, 10, 11, 0, :] = [-1.5, 0, 0, 0, 1, 8, -20]  # shifted by 0.13 cells: IoU ~0.9 with the first
    raws[1][0, 10, 10, 1, :] = [0, 0, 0, 0, 8, -20, 0]  # class 1, score sigmoid(8) * 0.5
    del target
    found = postprocess([tf.constant(r) for r in raws], ANCHORS, 0.3, 0.5, 10)
    assert int(found["num_detections"][0]) == 2
    assert sorted(found["classes"][0, :2].numpy().tolist()) == [0, 1]
    np.testing.assert_allclose(found["boxes"][0, 0].numpy(), [0.425, 0.425, 0.625, 0.625], atol=1e-5)
    agnostic = postprocess([tf.constant(r) for r in raws], ANCHORS, 0.3, 0.5, 10, class_agnostic=True)
    assert int(agnostic["num_detections"][0]) == 1 and int(agnostic["classes"][0, 0]) == 0
    high = postprocess([tf.constant(r) for r in raws], ANCHORS, 0.9, 0.5, 10)
    assert int(high["num_detections"][0]) == 1


def test_map_and_precision_recall_on_hand_made_detections():
    truths = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([0, 1]))]
    perfect = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([0.9, 0.8]), np.array([0, 1]))]
    result = coco_evaluate(truths, perfect, 2)
    assert result["map50"] == pytest.approx(1.0) and result["map"] == pytest.approx(1.0)
    # One right, one false box of the wrong class, one missed.
    half = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([0.9, 0.8]), np.array([0, 0]))]
    assert coco_evaluate(truths, half, 2)["ap50_per_class"] == [pytest.approx(1.0), 0.0]
    measured = precision_recall(truths, half, 0.5)
    assert (measured["precision"], measured["recall"], measured["missed"]) == (0.5, 0.5, 1)


def test_augmentation_keeps_boxes_on_their_objects(tmp_path):
    from dlapps.data.annotations import Annotation
    from dlapps.data.detection import augment, cache_images, letterboxed

    image = np.full((60, 90, 3), 255, np.uint8)
    image[10:30, 50:80] = (255, 0, 0)  # a red box at x 50-80, y 10-30
    path = tmp_path / "red.png"
    Image.fromarray(image).save(path)
    record = Annotation(path, 90, 60, np.array([[50, 10, 80, 30]], np.float32), np.array([0], np.int32))
    pixels, sizes, boxes = cache_images([record], 64)[:3]
    view, out = letterboxed(tf.constant(pixels[0]), sizes[0], tf.constant(boxes[0]), 64)
    np.testing.assert_allclose(
        out.numpy()[0] * 64,
        [50 * 64 / 90, 10 * 64 / 90 + 64 * 15 / 90, 80 * 64 / 90, 30 * 64 / 90 + 64 * 15 / 90],
        atol=1e-3,
    )
    for seed in range(12):
        view, out = augment(
            tf.constant(pixels[0]), sizes[0], tf.constant(boxes[0]), 64, tf.constant([seed, 1]), colour=False
        )
        box = out.numpy()[0] * 64
        if box[2] - box[0] < 4:
            continue  # moved out of the frame: dropped
        x1, y1, x2, y2 = np.round(box + [1.5, 1.5, -1.5, -1.5]).astype(int)
        inside = view.numpy()[y1:y2, x1:x2]
        assert inside.size and np.allclose(inside.mean(axis=(0, 1)), [255, 0, 0], atol=25), seed


def test_mosaic_tiles_four_images_with_each_box_on_its_object(tmp_path):
    from dlapps.data.annotations import Annotation
    from dlapps.data.detection import MAX_BOXES, cache_images, mosaic

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    records = []
    for label, colour in enumerate(colours):
        image = np.full((60, 90, 3), 255, np.uint8)
        image[10:40, 20:60] = colour  # a square of the class's colour at x 20-60, y 10-40
        Image.fromarray(image).save(tmp_path / f"{label}.png")
        box = np.array([[20, 10, 60, 40]], np.float32)
        records.append(Annotation(tmp_path / f"{label}.png", 90, 60, box, np.array([label], np.int32)))
    cache = [tf.constant(array) for array in cache_images(records, 64)[:4]]
    found = 0
    for seed in range(6):
        view, boxes, labels = mosaic(*cache, 1, 64, tf.constant([seed, 3]), colour=False)
        assert view.shape == (64, 64, 3) and boxes.shape == (4 * MAX_BOXES, 4) and labels.shape == (4 * MAX_BOXES,)
        for box, label in zip(boxes.numpy() * 64, labels.numpy(), strict=True):
            if box[2] - box[0] < 4 or box[3] - box[1] < 4:
                continue  # padding, or a box that left its tile
            x1, y1, x2, y2 = np.round(box + [1.5, 1.5, -1.5, -1.5]).astype(int)
            inside = view.numpy()[y1:y2, x1:x2].mean(axis=(0, 1))
            assert np.allclose(inside, colours[label], atol=25), (seed, label, inside)
            found += 1
        # The first tile is always image 1 (the one asked for): its box, if kept, is in the top-left quarter.
        first = boxes.numpy()[:MAX_BOXES][labels.numpy()[:MAX_BOXES] == 1]
        assert np.all(first[first[:, 2] > first[:, 0]] <= 0.5 + 1e-6)
    assert found >= 12
    # In the training pipeline, mosaics and single views mix in one batch.
    from dlapps.data.detection import make_detection_dataset

    anchors = np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]] * 3, np.float32)
    data = make_detection_dataset(cache_images(records, 64), np.arange(4), anchors, 64, 4, 4, True, mosaic_rate=0.5)
    images, targets = next(iter(data))
    assert images.shape == (4, 64, 64, 3) and all(target.shape[0] == 4 for target in targets)


# === Readers ===


def _voc(name, size, objects):
    items = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
        f"<ymax>{d}</ymax></bndbox></object>"
        for n, (a, b, c, d) in objects
    )
    return (
        f"<annotation><filename>{name}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"</size>{items}</annotation>"
    )


def _image(path, size=(40, 30), format=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(path, format=format)


def test_voc_reader_takes_sizes_from_images_and_names_each_problem(tmp_path):
    _image(tmp_path / "a.jpg", format="PNG")  # a PNG named .jpg whose XML says 0 x 0
    (tmp_path / "a.xml").write_text(_voc("a.jpg", (0, 0), [("cat", (1, 2, 20, 25)), ("dog", (30, 5, 60, 40))]))
    _image(tmp_path / "b.jpg")
    (tmp_path / "b.xml").write_text(_voc("b.jpg", (40, 30), [("cat", (5, 5, 5, 9))]))  # zero area
    _image(tmp_path / "c.jpg")
    (tmp_path / "c.xml").write_text("<annotation><object>")  # broken
    _image(tmp_path / "d.jpg")  # background: no XML
    (tmp_path / "e.xml").write_text(_voc("e.jpg", (40, 30), [("cat", (1, 1, 5, 5))]))  # no image
    warnings = []
    records, names, kind = read_detection_folder(tmp_path, on_warning=warnings.append)
    assert kind == "voc" and names == ["cat", "dog"]
    by_name = {r.image.name: r for r in records}
    assert sorted(by_name) == ["a.jpg", "b.jpg", "d.jpg"]
    assert (by_name["a.jpg"].width, by_name["a.jpg"].height) == (40, 30)
    np.testing.assert_allclose(by_name["a.jpg"].boxes, [[1, 2, 20, 25], [30, 5, 40, 30]])  # clipped
    assert by_name["a.jpg"].labels.tolist() == [0, 1] and len(by_name["b.jpg"].boxes) == 0
    text = "\n".join(warnings)
    for expected in (
        "a.xml: 1 box(es) outside",
        "b.xml: 1 box(es) of zero area",
        "c.xml: not a readable VOC",
        "e.xml: no image named e",
    ):
        assert expected in text


def test_readers_agree_and_convert_round_trips(tmp_path):
    _image(tmp_path / "voc" / "x.jpg", (50, 40))
    (tmp_path / "voc" / "x.xml").write_text(_voc("x.jpg", (50, 40), [("b", (10, 8, 30, 28)), ("a", (0, 0, 50, 20))]))
    records, names, _ = read_detection_folder(tmp_path / "voc")
    for kind in ("yolo", "coco"):
        folder = tmp_path / kind
        write_annotations(records, names, folder, kind)
        again, again_names, found = read_detection_folder(folder)
        assert found == kind and again_names == names == ["a", "b"]
        np.testing.assert_allclose(again[0].boxes, records[0].boxes, atol=1e-3)
        assert again[0].labels.tolist() == records[0].labels.tolist()
    with pytest.raises(DataError, match="not empty"):  # never over the source or another data set
        write_annotations(records, names, tmp_path / "voc", "voc")


def test_yolo_reader_uses_data_yaml_and_unknown_classes_are_left_out(tmp_path):
    _image(tmp_path / "images" / "p.png", (100, 50))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "p.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.1 0.1\n")
    (tmp_path / "data.yaml").write_text("names: [raccoon, fox]\n")
    records, names, _ = read_detection_folder(tmp_path)
    assert names == ["raccoon", "fox"]
    np.testing.assert_allclose(records[0].boxes, [[40, 15, 60, 35], [5, 2.5, 15, 7.5]])
    warnings = []
    records, names, _ = read_detection_folder(tmp_path, ["fox"], warnings.append)
    assert records[0].labels.tolist() == [0] and "raccoon" in warnings[0]


def test_layout_problems_are_refused(tmp_path):
    with pytest.raises(DataError, match="no images"):
        detect_format(tmp_path)
    _image(tmp_path / "a.jpg")
    (tmp_path / "a.xml").write_text(_voc("a.jpg", (40, 30), [("cat", (1, 2, 20, 25))]))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DataError, match="mixes annotation formats"):
        detect_format(tmp_path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match="not a COCO detection file"):
        read_detection_folder(tmp_path / "broken.json")
    (tmp_path / "ok.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(DataError, match="no image with readable annotations"):
        read_detection_folder(tmp_path / "ok.json")


def test_detector_phases_protect_a_pretrained_backbone_and_drop_empty_phases():
    from dlapps.tasks.yolo_detector import detector_phases

    anchors = np.full((9, 2), 0.1, np.float32)

    def plan(epochs, pretrained=True):
        phases = detector_phases(anchors, 64, 2, epochs, (1e-3, 1e-4), 5, pretrained=pretrained)
        return [(phase["name"], phase["epochs"]) for phase in phases]

    assert plan((3, 4)) == [("head", 3), ("fine_tune", 4)]
    assert plan((0, 4)) == [("fine_tune", 4)] and plan((3, 0)) == [("head", 3)]
    assert plan((3, 4), pretrained=False) == [("fine_tune", 7)]  # nothing to protect: one phase, everything trains


def test_an_untrained_detector_never_emits_boxes_under_a_pixel():
    """Boxes an untrained model places in the letterbox padding clip to nothing; they are dropped, the rest kept in
    score order (the fault: a 1-epoch model's zero-area boxes)."""
    import keras

    from dlapps.tasks.yolo_detector import Detector, build_yolo_detector

    keras.utils.set_random_seed(0)
    model = build_yolo_detector(2, image_size=64, backbone="small_resnet", weights=None, width=16)
    anchors = np.tile([[0.05, 0.05], [0.1, 0.1], [0.2, 0.2]], (3, 1)).astype(np.float32)
    detector = Detector(model, anchors, 0.0, 0.99, 100)
    strip = np.random.default_rng(0).integers(0, 255, (1, 20, 90, 3)).astype(np.uint8)  # mostly padding
    found = detector.detect(strip)
    count = int(found["num_detections"][0])
    boxes, scores = found["boxes"][0].numpy(), found["scores"][0].numpy()
    assert count > 0 and (boxes[:count, 2:] - boxes[:count, :2] >= 1.0).all()
    assert (np.diff(scores[:count]) <= 1e-6).all() and (boxes[count:] == 0).all()
