"""A YOLO-style detector: a pretrained backbone, a light feature pyramid, and one S x S x A x (5 + C) head per scale.

What the course teaches, in code: the image is cut into an S x S grid; each cell predicts, for each of its A anchor
boxes, a box (offsets from the cell and the anchor), an objectness score and class probabilities; a box is assigned
to the cell holding its centre and to the anchor it overlaps most (IoU of shapes); at inference, boxes under a score
threshold are dropped and non-max suppression (per class) removes duplicates. One convolutional pass computes every
cell at once: a sliding window done by the network's own convolutions rather than one crop per window.

Choices taken from later YOLOs (each a line, the sources are the papers and Ultralytics' YOLOv5):
- three scales (strides 8, 16, 32) with 3 anchors each from k-means on the training boxes (YOLOv2, YOLOv3);
- box decoding `xy = (2 sigmoid(t) - 0.5 + cell) / S`, `wh = (2 sigmoid(t))^2 * anchor` (YOLOv5): bounded, so a
  box can also be learnt by the two neighbouring cells nearest its centre (three times the positives on small data);
- a box is assigned to every anchor whose shape IoU with it is at least `ANCHOR_IOU_THRESHOLD`, and always to its best;
- losses: 1 - CIoU for boxes (Zheng et al. 2020); for objectness, whose target is the IoU of the predicted box (so
  the score ranks boxes by quality), either YOLOv5's binary cross-entropy averaged over every cell and anchor, or the
  varifocal loss (Zhang et al. 2021, VarifocalNet): positives weighted by their target, negatives by 0.75 p^2, summed
  over the positives' count, so that thousands of easy background cells no longer drown the few that hold objects;
  binary cross-entropy for classes; YOLOv5's loss gains and per-scale balance.
Coordinates: models take float32 (B, S, S, 3) 0-255 RGB letterboxed images; boxes are 0-1 of the square input.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from dlapps.losses import OBJECTNESS_LOSSES

STRIDES = (8, 16, 32)
ANCHORS_PER_SCALE = 3
ANCHOR_IOU_THRESHOLD = 0.3
# The grey of the letterbox bars (and of augmentation's empty borders): the middle of 0-255, zero after normalisation.
PAD_VALUE = 127.0
# YOLOv5's loss gains (hyp.scratch-low.yaml) and objectness balance for strides 8, 16, 32.
BOX_GAIN, OBJECT_GAIN, CLASS_GAIN = 0.05, 1.0, 0.5
OBJECT_BALANCE = (4.0, 1.0, 0.4)
# The varifocal objectness loss: its alpha and gamma (VarifocalNet's 0.75 and 2) and a gain that puts it near the box
# term at initialisation (both about 0.02 on fruit), as PP-YOLOE weighs its varifocal and box losses alike.
VARIFOCAL_ALPHA, VARIFOCAL_GAMMA, VARIFOCAL_GAIN = 0.75, 2.0, 0.02
# Batch-norm statistics of the neck and head follow the weights faster than Keras' 0.99 (measured: at 0.99, and even
# 0.97, a tiny set trained to mAP 0.69 with batch statistics scored 0.02 with the moving ones: few steps on small
# data). DevMAP also recomputes them on training images before measuring (dlapps.training.recalibrate_batch_norm).
BN_MOMENTUM = 0.9


# === Model ===


def _conv(x, filters, kernel_size, name, stride=1):
    if kernel_size == 1:
        x = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_conv")(x)
    else:  # Depthwise-separable: the light neck a CPU can train.
        x = layers.DepthwiseConv2D(kernel_size, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
        x = layers.Activation("swish", name=f"{name}_dw_act")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.Activation("swish", name=f"{name}_act")(x)


def build_yolo_detector(
    num_classes,
    image_size=320,
    backbone="efficientnet_lite0",
    weights="imagenet",
    width=96,
    anchors_per_scale=ANCHORS_PER_SCALE,
):
    """The detector as a Keras model: (B, S, S, 3) 0-255 pixels -> one raw tensor (B, S/s, S/s, A, 5 + C) per stride.

    Raw channels are [tx, ty, tw, th, objectness logit, class logits...]; `decode_raw` turns them into boxes.
    The backbone is the nested model named "backbone" (frozen by the caller for the first phase).
    """
    from dlapps.backbones import DETECTOR_BACKBONES
    from dlapps.backbones.applications import build_feature_pyramid

    if backbone not in DETECTOR_BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(DETECTOR_BACKBONES)}. Received: backbone={backbone}")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    base = build_feature_pyramid(backbone, (image_size, image_size), weights, STRIDES)
    c3, c4, c5 = base(inputs)
    # Top-down (FPN) then bottom-up (PAN) paths, as YOLOv4/v5's neck, with separable convolutions.
    p5 = _conv(c5, width, 1, "lateral32")
    p4 = _conv(layers.Concatenate(name="up16")([layers.UpSampling2D(name="upsample16")(p5), c4]), width, 3, "td16")
    p3 = _conv(layers.Concatenate(name="up8")([layers.UpSampling2D(name="upsample8")(p4), c3]), width, 3, "td8")
    n4 = _conv(layers.Concatenate(name="down16")([_conv(p3, width, 3, "bu8", stride=2), p4]), width, 3, "out16")
    n5 = _conv(layers.Concatenate(name="down32")([_conv(n4, width, 3, "bu16", stride=2), p5]), width, 3, "out32")
    outputs = []
    for stride, feature in zip(STRIDES, (p3, n4, n5), strict=True):
        grid = image_size // stride
        # Initial biases as YOLOv5: about 8 objects per image and a class prior of 0.6 / C.
        bias = np.zeros((anchors_per_scale, 5 + num_classes), np.float32)
        bias[:, 4] = math.log(8 / grid**2)
        bias[:, 5:] = math.log(0.6 / max(num_classes - 0.99, 0.01))
        raw = layers.Conv2D(
            anchors_per_scale * (5 + num_classes),
            1,
            name=f"head{stride}",
            bias_initializer=keras.initializers.Constant(bias.reshape(-1)),
        )(_conv(feature, width, 3, f"head{stride}_pre"))
        outputs.append(layers.Reshape((grid, grid, anchors_per_scale, 5 + num_classes), name=f"scale{stride}")(raw))
    return keras.Model(inputs, outputs, name="yolo_detector")


# === Boxes ===


def split_anchors(anchors):
    """Anchors (K, 2) 0-1 widths and heights, sorted by area, to one (K / 3, 2) group per stride, smallest first."""
    anchors = np.asarray(anchors, np.float32).reshape(-1, 2)
    anchors_per_scale = len(anchors) // len(STRIDES)
    anchors = anchors[np.argsort(np.prod(anchors, axis=1), kind="stable")]
    return [anchors[i * anchors_per_scale : (i + 1) * anchors_per_scale] for i in range(len(STRIDES))]


def decode_raw(raw, anchors):
    """Raw head output (B, G, G, A, 5 + C) to (centre xy (B, G, G, A, 2), wh (.., 2), 0-1 of the input; objectness
    logits (B, G, G, A); class logits (B, G, G, A, C)). `anchors` float (A, 2), 0-1 of the input."""
    grid = tf.shape(raw)[1]
    cells = tf.cast(tf.range(grid), raw.dtype)
    cell_x, cell_y = tf.meshgrid(cells, cells)  # (G, G): x varies along columns.
    offsets = tf.stack([cell_x, cell_y], axis=-1)[None, :, :, None, :]
    size = tf.cast(grid, raw.dtype)
    xy = (2.0 * tf.sigmoid(raw[..., 0:2]) - 0.5 + offsets) / size
    wh = tf.square(2.0 * tf.sigmoid(raw[..., 2:4])) * tf.convert_to_tensor(anchors, raw.dtype)
    return xy, wh, raw[..., 4], raw[..., 5:]


def xywh_to_xyxy(xy, wh):
    return tf.concat([xy - wh / 2, xy + wh / 2], axis=-1)


def box_iou_elementwise(box_a, box_b, kind="iou", eps=1e-9):
    """IoU, GIoU (Rezatofighi et al. 2019) or CIoU (Zheng et al. 2020) of boxes (..., 4) xyxy, elementwise."""
    a1, a2, b1, b2 = box_a[..., :2], box_a[..., 2:], box_b[..., :2], box_b[..., 2:]
    intersection = tf.reduce_prod(tf.maximum(tf.minimum(a2, b2) - tf.maximum(a1, b1), 0.0), axis=-1)
    size_a, size_b = tf.maximum(a2 - a1, 0.0), tf.maximum(b2 - b1, 0.0)
    union = tf.reduce_prod(size_a, -1) + tf.reduce_prod(size_b, -1) - intersection + eps
    iou = intersection / union
    if kind == "iou":
        return iou
    enclosing = tf.maximum(a2, b2) - tf.minimum(a1, b1)
    if kind == "giou":
        enclosing_area = tf.reduce_prod(enclosing, -1) + eps
        return iou - (enclosing_area - union) / enclosing_area
    diagonal = tf.reduce_sum(tf.square(enclosing), -1) + eps
    centre_distance = tf.reduce_sum(tf.square((a1 + a2) / 2 - (b1 + b2) / 2), -1)
    aspect = (4 / math.pi**2) * tf.square(
        tf.atan(size_b[..., 0] / (size_b[..., 1] + eps)) - tf.atan(size_a[..., 0] / (size_a[..., 1] + eps))
    )
    alpha = tf.stop_gradient(aspect / (aspect - iou + 1 + eps))
    return iou - centre_distance / diagonal - alpha * aspect


# === Targets ===


def encode_targets(boxes, labels, anchors, image_size, num_classes):
    """Training targets of one image, one (G, G, A, 5 + C) float32 tensor per stride (a TF graph function).

    Args:
        boxes: float32 (N, 4) xyxy, 0-1 of the input (padding rows have zero width and are ignored).
        labels: int32 (N,).
        anchors: float (K, 2) 0-1, sorted by area (K = 3 x A: A per stride).
    Each target holds [centre x, centre y, w, h (0-1), 1 (positive), one-hot class] in every cell and anchor
    responsible for a box: the box's centre cell and the two neighbouring cells nearest the centre, for each anchor
    whose shape IoU with the box is at least ANCHOR_IOU_THRESHOLD, and always its best anchor. Elsewhere zeros.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    anchors = np.concatenate(split_anchors(anchors))  # sorted by area: the first A belong to stride 8, ...
    anchors_per_scale = len(anchors) // len(STRIDES)
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    wh = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    valid = tf.reduce_all(wh > 0, axis=-1)
    intersection = tf.reduce_prod(tf.minimum(wh[:, None], anchors[None]), -1)
    shape_iou = intersection / (tf.reduce_prod(wh, -1)[:, None] + tf.reduce_prod(anchors, -1)[None] - intersection)
    best = tf.one_hot(tf.argmax(shape_iou, axis=1), tf.shape(anchors)[0]) > 0
    matched = (best | (shape_iou >= ANCHOR_IOU_THRESHOLD)) & valid[:, None]  # (N, K)
    values = tf.concat([centre, wh, tf.ones_like(wh[:, :1]), tf.one_hot(labels, num_classes)], -1)  # (N, 5 + C)
    targets = []
    for scale, stride in enumerate(STRIDES):
        grid = image_size // stride
        position = centre * grid
        cell = tf.floor(position)
        fraction = position - cell
        last = float(grid - 1)
        # Candidate cells: the centre's, its left/right neighbour nearer the centre, its upper/lower one.
        candidates = [
            (tf.zeros_like(cell), tf.ones_like(valid)),
            (tf.constant([-1.0, 0.0]), (fraction[:, 0] < 0.5) & (cell[:, 0] > 0)),
            (tf.constant([1.0, 0.0]), (fraction[:, 0] >= 0.5) & (cell[:, 0] < last)),
            (tf.constant([0.0, -1.0]), (fraction[:, 1] < 0.5) & (cell[:, 1] > 0)),
            (tf.constant([0.0, 1.0]), (fraction[:, 1] >= 0.5) & (cell[:, 1] < last)),
        ]
        indices, updates = [], []
        for anchor in range(anchors_per_scale):
            anchor_matched = matched[:, scale * anchors_per_scale + anchor]
            for offset, usable in candidates:
                xy = tf.clip_by_value(cell + offset, 0.0, last)
                keep = anchor_matched & usable
                index = tf.stack(
                    [tf.cast(xy[:, 1], tf.int32), tf.cast(xy[:, 0], tf.int32), tf.fill(tf.shape(labels), anchor)],
                    axis=-1,
                )
                indices.append(tf.boolean_mask(index, keep))
                updates.append(tf.boolean_mask(values, keep))
        target = tf.zeros((grid, grid, anchors_per_scale, 5 + num_classes), tf.float32)
        targets.append(tf.tensor_scatter_nd_update(target, tf.concat(indices, 0), tf.concat(updates, 0)))
    return tuple(targets)


# === Loss ===


@keras.saving.register_keras_serializable(package="dlapps")
class YoloLoss(keras.losses.Loss):
    """The loss of one scale: box_gain (1 - CIoU) + the objectness term + CLASS_GAIN BCE(classes).

    y_true: (B, G, G, A, 5 + C) from `encode_targets`; y_pred: the raw head output of the same shape. Box and class
    terms average over positives. The objectness target is the predicted box's CIoU with its truth (at least 0) at
    positives, 0 elsewhere; `objectness` "bce": OBJECT_GAIN x balance x BCE averaged over every cell and anchor
    (YOLOv5's normalisation; its gains are scaled by image size, number of scales and classes the same way);
    "varifocal": VARIFOCAL_GAIN x the sum over cells of w BCE / positives, w = the target at positives and
    alpha p^gamma elsewhere (p the predicted objectness, no gradient through w), as VarifocalNet (Zhang et al. 2021).

    Raises:
        ValueError: an unknown `objectness`.
    """

    def __init__(self, anchors, balance, image_size, num_classes, box_gain=BOX_GAIN, objectness="bce",
                 name="yolo_loss", **kwargs):  # fmt: skip
        super().__init__(name=name, **kwargs)
        if objectness not in OBJECTNESS_LOSSES:
            raise ValueError(f"objectness must be one of {', '.join(OBJECTNESS_LOSSES)}. Received: {objectness!r}")
        self.objectness = objectness
        self.box_gain = float(box_gain)
        self.anchors = np.asarray(anchors, np.float32).tolist()
        self.balance = float(balance)
        self.image_size = int(image_size)
        self.num_classes = int(num_classes)

    def call(self, y_true, y_pred):
        xy, wh, object_logits, class_logits = decode_raw(y_pred, self.anchors)
        positive = y_true[..., 4]
        count = tf.maximum(tf.reduce_sum(positive), 1.0)
        ciou = box_iou_elementwise(xywh_to_xyxy(xy, wh), xywh_to_xyxy(y_true[..., 0:2], y_true[..., 2:4]), "ciou")
        box_loss = tf.reduce_sum(positive * (1.0 - ciou)) / count
        object_target = positive * tf.stop_gradient(tf.maximum(ciou, 0.0))
        object_bce = tf.nn.sigmoid_cross_entropy_with_logits(object_target, object_logits)
        if self.objectness == "varifocal":
            focal = VARIFOCAL_ALPHA * tf.stop_gradient(tf.sigmoid(object_logits)) ** VARIFOCAL_GAMMA
            weight = tf.where(positive > 0, object_target, focal)
            object_term = VARIFOCAL_GAIN * tf.reduce_sum(weight * object_bce) / count
        else:
            object_gain = OBJECT_GAIN * (self.image_size / 640) ** 2 * 3 / len(STRIDES)
            object_term = object_gain * self.balance * tf.reduce_mean(object_bce)
        class_loss = tf.reduce_sum(
            positive[..., None] * tf.nn.sigmoid_cross_entropy_with_logits(y_true[..., 5:], class_logits)
        ) / (count * self.num_classes)
        scales = len(STRIDES) / 3
        class_gain = CLASS_GAIN * self.num_classes / 80 * scales if self.num_classes > 1 else 0.0
        total = self.box_gain * scales * box_loss + object_term + class_gain * class_loss
        return total * tf.ones_like(y_pred[:, 0, 0, 0, 0])  # One value per image, as Keras reduces losses.

    def get_config(self):
        return {
            **super().get_config(),
            "anchors": self.anchors,
            "balance": self.balance,
            "image_size": self.image_size,
            "num_classes": self.num_classes,
            "box_gain": self.box_gain,
            "objectness": self.objectness,
        }


def make_losses(anchors, image_size, num_classes, box_gain=BOX_GAIN, objectness="bce"):
    return [
        YoloLoss(group, balance, image_size, num_classes, box_gain, objectness, name=f"loss{stride}")
        for group, balance, stride in zip(split_anchors(anchors), OBJECT_BALANCE, STRIDES, strict=True)
    ]


def detector_phases(anchors, image_size, num_classes, epochs, learning_rates, steps_per_epoch,
                    fine_tune_fraction=1.0, pretrained=True, box_gain=BOX_GAIN, objectness="bce"):  # fmt: skip
    """`dlapps.training.fit_phases` phases for a detector from `build_yolo_detector` (its base named "backbone").

    A pretrained backbone: "head" (neck and head on the frozen backbone) for `epochs[0]` at `learning_rates[0]`, then
    "fine_tune" (the top `fine_tune_fraction` of the backbone, batch norm frozen) for `epochs[1]` at
    `learning_rates[1]`; a phase of 0 epochs is left out. From scratch (`pretrained=False`) nothing needs protecting:
    one "fine_tune" phase of sum(epochs) at `learning_rates[0]`. Each phase: Adam on a cosine schedule over its own
    steps, the three scales' `YoloLoss` (with `box_gain` and the `objectness` loss, "varifocal" or "bce").
    """
    from dlapps.training import make_learning_rate, unfreeze_top

    def prepare(learning_rate, phase_epochs, unfreeze):
        def run(trained):
            if unfreeze:
                unfreeze_top(trained.get_layer("backbone"), fraction=fine_tune_fraction)
            else:
                trained.get_layer("backbone").trainable = False
            schedule = make_learning_rate(learning_rate, "cosine", steps_per_epoch, phase_epochs)
            trained.compile(
                optimizer=keras.optimizers.Adam(schedule),
                loss=make_losses(anchors, image_size, num_classes, box_gain, objectness),
            )

        return run

    if not pretrained:
        return [{"name": "fine_tune", "epochs": sum(epochs), "prepare": prepare(learning_rates[0], sum(epochs), True)}]
    phases = [
        {"name": "head", "epochs": epochs[0], "prepare": prepare(learning_rates[0], epochs[0], False),
         "description": "neck and head on the frozen backbone"},
        {"name": "fine_tune", "epochs": epochs[1], "prepare": prepare(learning_rates[1], epochs[1], True),
         "description": "the whole network"},
    ]  # fmt: skip
    return [phase for phase in phases if phase["epochs"] > 0]


# === Inference ===


# Candidates (the highest scores) kept for non-max suppression. YOLOv5 keeps up to 30,000; at 100 detections a few
# thousand change nothing measurable and keep NMS fast.
NMS_CANDIDATES = 4000


def candidates(raws, anchors):
    """Every scale's decoded boxes and scores, flattened: boxes float32 (B, N, 4) xyxy 0-1 of the input and scores
    (B, N, C), objectness x class probability; N counts the cells and anchors of all scales, smallest stride first.
    `raws`: the model's outputs, one (B, G, G, A, 5 + C) per stride; `anchors`: float (K, 2) 0-1."""
    all_boxes, all_scores = [], []
    for raw, group in zip(raws, split_anchors(anchors), strict=True):
        xy, wh, object_logits, class_logits = decode_raw(raw, group)
        boxes = xywh_to_xyxy(xy, wh)
        scores = tf.sigmoid(object_logits)[..., None] * tf.sigmoid(class_logits)
        batch = tf.shape(raw)[0]
        all_boxes.append(tf.reshape(boxes, (batch, -1, 4)))
        all_scores.append(tf.reshape(scores, (batch, -1, scores.shape[-1])))
    return tf.concat(all_boxes, axis=1), tf.concat(all_scores, axis=1)


def postprocess(raws, anchors, score_threshold, iou_threshold, max_detections, class_agnostic=False):
    """Decode every scale and run non-max suppression (tf.image), per class unless `class_agnostic`.

    Args:
        raws: the model's outputs, one (B, G, G, A, 5 + C) per stride.
        anchors: float (K, 2) 0-1.
        score_threshold: minimum objectness x class probability (0-1); iou_threshold: NMS overlap (0-1).
    Returns:
        dict of boxes float32 (B, max_detections, 4) xyxy 0-1 of the input, scores (B, M), classes int32 (B, M),
        num_detections int32 (B,); rows past num_detections are zeros.
    """
    boxes, scores = candidates(raws, anchors)

    def one_image(pair):
        return nms_one_image(pair[0], pair[1], score_threshold, iou_threshold, max_detections, class_agnostic)

    if boxes.shape[0] == 1:  # a fixed batch of one (the TFLite and ONNX exports): no loop in the graph
        return {key: value[None] for key, value in one_image((boxes[0], scores[0])).items()}
    signature = {
        "boxes": tf.TensorSpec((max_detections, 4), tf.float32),
        "scores": tf.TensorSpec((max_detections,), tf.float32),
        "classes": tf.TensorSpec((max_detections,), tf.int32),
        "num_detections": tf.TensorSpec((), tf.int32),
    }
    return tf.map_fn(one_image, (boxes, scores), fn_output_signature=signature)


def nms_one_image(boxes, scores, score_threshold, iou_threshold, max_detections, class_agnostic=False):
    """Non-max suppression of one image's boxes, per class unless `class_agnostic`.

    Per class by the coordinate-offset trick (torchvision's `batched_nms`): each (box, class) pair is a candidate, and
    each class's boxes are moved apart by more than the boxes' span, so one greedy NMS (`tf.image`'s
    NonMaxSuppressionV4, a TFLite builtin; combined NMS is a Flex op that TFLite interpreters lack) never lets boxes of
    different classes suppress each other. Only the NMS_CANDIDATES highest scores take part.

    Args:
        boxes: float32 (N, 4) xyxy; scores: float32 (N, C).
    Returns:
        dict of boxes (M, 4), scores (M,), classes int32 (M,) and num_detections int32 (), M = max_detections, in
        decreasing score; rows past num_detections are zeros.
    """
    num_classes = scores.shape[-1]
    if class_agnostic:
        flat_scores = tf.reduce_max(scores, axis=-1)
        flat_classes = tf.argmax(scores, axis=-1, output_type=tf.int32)
        flat_boxes = boxes
    else:
        flat_scores = tf.reshape(scores, [-1])
        pairs = tf.range(tf.shape(flat_scores)[0])
        flat_classes = pairs % num_classes
        flat_boxes = tf.gather(boxes, pairs // num_classes)
    count = flat_scores.shape[0]
    candidates = min(NMS_CANDIDATES, count) if count is not None else tf.minimum(NMS_CANDIDATES, tf.size(flat_scores))
    top_scores, top = tf.math.top_k(flat_scores, candidates)
    top_boxes, top_classes = tf.gather(flat_boxes, top), tf.gather(flat_classes, top)
    shifted = top_boxes
    if not class_agnostic:
        span = tf.reduce_max(top_boxes) - tf.reduce_min(top_boxes) + 1.0
        shifted = top_boxes + tf.cast(top_classes, tf.float32)[:, None] * span
    # The NonMaxSuppressionV4 op itself, padded to max_detections: `tf.image.non_max_suppression_padded` with
    # padding runs its tiled batch version instead (about 40 ms more per image here, and a much larger graph).
    kept, found = tf.raw_ops.NonMaxSuppressionV4(
        boxes=tf.gather(shifted, [1, 0, 3, 2], axis=-1), scores=top_scores, max_output_size=max_detections,
        iou_threshold=iou_threshold, score_threshold=score_threshold, pad_to_max_output_size=True,
    )  # fmt: skip
    valid = tf.range(max_detections) < found
    return {
        "boxes": tf.where(valid[:, None], tf.gather(top_boxes, kept), 0.0),
        "scores": tf.where(valid, tf.gather(top_scores, kept), 0.0),
        "classes": tf.where(valid, tf.gather(top_classes, kept), 0),
        "num_detections": tf.cast(found, tf.int32),
    }


def letterbox_geometry(height, width, image_size):
    """Where an image of `height` x `width` pixels lands in the `image_size` square: (scale (float32),
    (new height, new width) (int32), (pad_y, pad_x) (int32)); canvas pixel = image pixel x scale + pad. TF ops, so
    `letterbox`'s graph and `ObjectDetector.explain` (eagerly) share the one rule."""
    height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    scale = image_size / tf.maximum(height, width)
    new_height = tf.maximum(tf.cast(tf.round(height * scale), tf.int32), 1)
    new_width = tf.maximum(tf.cast(tf.round(width * scale), tf.int32), 1)
    return scale, (new_height, new_width), ((image_size - new_height) // 2, (image_size - new_width) // 2)


def letterbox(images, image_size):
    """Uint8 or float (B, H, W, 3) images to float32 (B, S, S, 3) 0-255: resized (antialiased) to fit, centred on
    PAD_VALUE grey. Returns (canvas, scale, (pad_x, pad_y)): input pixel = (canvas pixel - pad) / scale."""
    images = tf.cast(images, tf.float32)
    scale, (new_height, new_width), (pad_y, pad_x) = letterbox_geometry(tf.shape(images)[1], tf.shape(images)[2],
                                                                         image_size)  # fmt: skip
    resized = tf.image.resize(images, tf.stack([new_height, new_width]), antialias=True)
    canvas = (
        tf.pad(
            resized - PAD_VALUE,
            [[0, 0], [pad_y, image_size - new_height - pad_y], [pad_x, image_size - new_width - pad_x], [0, 0]],
        )
        + PAD_VALUE
    )
    canvas = tf.ensure_shape(canvas, (None, image_size, image_size, 3))
    return canvas, scale, tf.cast(tf.stack([pad_x, pad_y]), tf.float32)


class Detector(tf.Module):
    """The one inference rule (predict, evaluate and every export): letterbox, model, decode, NMS, back to pixels.

    `detect(images)`: uint8 (B, H, W, 3) RGB of any size (one size per batch) -> dict of boxes float32
    (B, max_detections, 4) xmin, ymin, xmax, ymax in pixels of the input images, scores (B, M) 0-1, classes int32
    (B, M), num_detections int32 (B,).
    Images of different sizes share one network call through `letterbox_one` each, then `detect_letterboxed` (the
    server's micro-batches); the boxes equal `detect`'s up to the float rounding of a larger batch.
    """

    def __init__(self, model, anchors, score_threshold, iou_threshold, max_detections, class_agnostic=False):
        super().__init__(name="detector")
        self.model = model
        self.anchors = np.asarray(anchors, np.float32)
        self.image_size = int(model.input_shape[1])
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.class_agnostic = bool(class_agnostic)

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8)])
    def detect(self, images):
        canvas, scale, pad = letterbox(images, self.image_size)
        count = tf.shape(images)[0]
        size = tf.cast(tf.shape(images)[1:3], tf.float32)
        return self._detect_canvases(
            canvas, tf.fill([count], scale), tf.tile(pad[None], [count, 1]), tf.tile(size[None], [count, 1])
        )

    @tf.function(input_signature=[tf.TensorSpec((None, None, 3), tf.uint8)])
    def letterbox_one(self, image):
        """The first half of `detect` for one uint8 (H, W, 3) image: (canvas float32 (S, S, 3), scale (), pad (2,)),
        so that images of different sizes can share one network call (`detect_letterboxed`)."""
        canvas, scale, pad = letterbox(image[None], self.image_size)
        return canvas[0], scale, pad

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, None, None, 3), tf.float32),
            tf.TensorSpec((None,), tf.float32),
            tf.TensorSpec((None, 2), tf.float32),
            tf.TensorSpec((None, 2), tf.float32),
        ]
    )
    def detect_letterboxed(self, canvases, scales, pads, sizes):
        """The second half of `detect` for a batch of `letterbox_one` results: canvases (B, S, S, 3), scales (B,),
        pads (B, 2) and the original (height, width) (B, 2). Same outputs as `detect`, each image in its own pixels."""
        return self._detect_canvases(canvases, scales, pads, sizes)

    def _detect_canvases(self, canvas, scales, pads, sizes):
        raws = self.model(canvas, training=False)
        found = postprocess(
            raws, self.anchors, self.score_threshold, self.iou_threshold, self.max_detections, self.class_agnostic
        )
        limit = tf.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], axis=-1)[:, None, :]
        offset = tf.concat([pads, pads], axis=-1)[:, None, :]
        pixels = tf.clip_by_value((found["boxes"] * self.image_size - offset) / scales[:, None, None], 0.0, limit)
        # A box that lies in the letterbox padding clips to nothing: drop boxes under one pixel a side (an untrained
        # model emits them), moving the kept ones first, in their score order.
        valid = tf.range(self.max_detections)[None, :] < found["num_detections"][:, None]
        keep = valid & (pixels[..., 2] - pixels[..., 0] >= 1.0) & (pixels[..., 3] - pixels[..., 1] >= 1.0)
        order = tf.argsort(tf.cast(tf.logical_not(keep), tf.int32), axis=1, stable=True)
        return {
            "boxes": tf.gather(tf.where(keep[..., None], pixels, 0.0), order, batch_dims=1),
            "scores": tf.gather(tf.where(keep, found["scores"], 0.0), order, batch_dims=1),
            "classes": tf.gather(tf.where(keep, found["classes"], 0), order, batch_dims=1),
            "num_detections": tf.reduce_sum(tf.cast(keep, tf.int32), axis=1),
        }

    def detect_one(self, image):
        """Detections of one RGB uint8 (H, W, 3) image as NumPy: (boxes (M, 4) float32 xyxy pixels, scores (M,),
        classes (M,)), the M kept boxes only."""
        found = self.detect(image[None])
        count = int(found["num_detections"][0])
        return tuple(found[key][0, :count].numpy() for key in ("boxes", "scores", "classes"))


def detect_canvases(
    model, canvases, anchors, score_threshold=0.001, iou_threshold=0.5, max_detections=100, batch_size=16
):
    """Detections on letterboxed canvases (N, S, S, 3) 0-255: per image (boxes (M, 4) xyxy canvas pixels, scores,
    classes), NumPy. Low default score threshold: what mAP needs (the whole precision-recall curve)."""
    results = []
    size = model.input_shape[1]
    for start in range(0, len(canvases), batch_size):
        raws = model(tf.convert_to_tensor(canvases[start : start + batch_size]), training=False)
        found = postprocess(raws, anchors, score_threshold, iou_threshold, max_detections)
        for row in range(int(tf.shape(found["scores"])[0])):
            count = int(found["num_detections"][row])
            results.append(
                (
                    found["boxes"][row, :count].numpy() * size,
                    found["scores"][row, :count].numpy(),
                    found["classes"][row, :count].numpy(),
                )
            )
    return results


class DevMAP(keras.callbacks.Callback):
    """Puts dev mAP@0.5 (`val_map50`) and mAP@0.5:0.95 (`val_map`) in each epoch's logs, for checkpoints and early
    stopping. `canvases`: float32 (N, S, S, 3) letterboxed dev images; `truths`: per image (boxes in canvas
    pixels, labels). `calibration`: letterboxed training images whose batch-norm statistics replace the moving
    averages before measuring (`recalibrate_batch_norm`; the checkpoint keeps them). `ignored`: per image, the
    (boxes, labels) of difficult or crowd objects, which count for nothing (as `evaluate` measures)."""

    def __init__(self, canvases, truths, anchors, num_classes, calibration=None, ignored=None):
        super().__init__()
        self.canvases, self.truths, self.anchors, self.num_classes = canvases, truths, anchors, num_classes
        self.calibration, self.ignored = calibration, ignored

    def on_epoch_end(self, epoch, logs=None):
        from dlapps.metrics.detection import coco_evaluate
        from dlapps.training import recalibrate_batch_norm

        if self.calibration is not None:
            recalibrate_batch_norm(self.model, self.calibration)

        detections = detect_canvases(self.model, self.canvases, self.anchors)
        result = coco_evaluate(self.truths, detections, self.num_classes, ignored=self.ignored)
        if logs is not None:
            logs["val_map50"] = result["map50"]
            logs["val_map"] = result["map"]
