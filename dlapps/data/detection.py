"""tf.data pipelines for detection: images decoded once into memory, box-aware augmentation, YOLO targets.

Every image is decoded once (the one decoding rule, `read_image`) and kept in memory with its longest side at most
`CACHE_SCALE` x the input size (about 0.7 MB an image at 320 pixels: a few thousand images fit in a few GB).
Augmentation is one random affine map per image (zoom in or out, move, flip) applied to pixels and boxes together by
`tf.image.crop_and_resize` (boxes clipped to the frame, dropped when less than `MIN_VISIBLE` of them stays in it),
then colour jitter. Without augmentation the same map is the letterbox (the image fitted and centred). Keras'
bounding-box preprocessing layers can each do one of these steps; one affine map does them all with the boxes exact.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from dlapps.data.images import read_image
from dlapps.tasks.yolo_detector import PAD_VALUE, encode_targets

CACHE_SCALE = 1.5
MAX_BOXES = 100
MIN_VISIBLE = 0.35


def cache_images(records, image_size, on_progress=None, on_error=None):
    """Decode every record's image once; returns an `ImageCache`: (pixels uint8 (N, C, C, 3) top-left aligned, sizes
    int32 (N, 2) (height, width), boxes float32 (N, MAX_BOXES, 4) xyxy in cached pixels (zero rows pad), labels int32
    (N, MAX_BOXES), kept record indices) and `ignored`, per kept row the (boxes (K, 4) in cached pixels, labels (K,))
    of its difficult or crowd objects. C = CACHE_SCALE x image_size. Unreadable images go to `on_error`."""
    from PIL import Image

    side = int(round(CACHE_SCALE * image_size))
    pixels = np.full((len(records), side, side, 3), int(PAD_VALUE), np.uint8)
    sizes = np.zeros((len(records), 2), np.int32)
    boxes = np.zeros((len(records), MAX_BOXES, 4), np.float32)
    labels = np.zeros((len(records), MAX_BOXES), np.int32)
    kept, ignored = [], []
    for index, record in enumerate(records):
        try:
            image = read_image(record.image)
        except ValueError as error:
            if on_error:
                on_error(record.image, error)
            continue
        height, width = image.shape[:2]
        scale = min(1.0, side / max(height, width))
        if scale < 1.0:
            new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = np.asarray(Image.fromarray(image).resize(new_size, Image.BILINEAR, reducing_gap=None))
        pixels[index, : image.shape[0], : image.shape[1]] = image
        sizes[index] = image.shape[:2]
        # Boxes follow the image's real size (annotations are in the decoded image's pixels).
        factor = np.array([image.shape[1] / width, image.shape[0] / height] * 2, np.float32)
        count = min(len(record.boxes), MAX_BOXES)
        boxes[index, :count] = record.boxes[:count] * factor
        labels[index, :count] = record.labels[:count]
        kept.append(index)
        ignored.append((np.reshape(record.ignored_boxes, (-1, 4)) * factor, np.asarray(record.ignored_labels)))
        if on_progress:
            on_progress()
    kept = np.array(kept, np.int64)
    return ImageCache(pixels[kept], sizes[kept], boxes[kept], labels[kept], kept, ignored)


class ImageCache(NamedTuple):
    """`cache_images`' result (its first four arrays are what the training pipeline indexes)."""

    pixels: np.ndarray
    sizes: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    kept: np.ndarray
    ignored: list


def _affine_view(pixels, size, boxes, image_size, zoom, translate, flip):
    """Crop-and-resize the (h, w) image at `zoom` x its letterbox scale, moved by `translate` (fractions of the
    output), mirrored when `flip`; boxes follow. Returns (image float32 (S, S, 3) 0-255, boxes 0-1 xyxy)."""
    height, width = tf.cast(size[0], tf.float32), tf.cast(size[1], tf.float32)
    scale = image_size / tf.maximum(height, width) * zoom  # output pixels per image pixel
    span = image_size / scale  # image pixels seen by the output
    x0 = (width - span) / 2 - translate[0] * span
    y0 = (height - span) / 2 - translate[1] * span
    side = tf.cast(tf.shape(pixels)[0], tf.float32)
    # crop_and_resize samples output pixel i at window_top * (side - 1) + i * step: map pixel centres exactly.
    first_y, first_x = y0 + 0.5 / scale - 0.5, x0 + 0.5 / scale - 0.5
    last_y, last_x = y0 + (image_size - 0.5) / scale - 0.5, x0 + (image_size - 0.5) / scale - 0.5
    window = tf.stack([first_y, first_x, last_y, last_x]) / (side - 1)
    # Outside the image is PAD_VALUE grey: the cache's padding is that grey already.
    image = tf.cast(pixels, tf.float32)
    view = tf.image.crop_and_resize(
        image[None], window[None], [0], [image_size, image_size], extrapolation_value=PAD_VALUE
    )[0]
    moved = (boxes - tf.stack([x0, y0, x0, y0])) * scale
    clipped = tf.clip_by_value(moved, 0.0, float(image_size))
    area = lambda b: tf.maximum(b[:, 2] - b[:, 0], 0.0) * tf.maximum(b[:, 3] - b[:, 1], 0.0)  # noqa: E731
    keep = (area(clipped) >= MIN_VISIBLE * area(moved)) & (area(moved) > 0)
    keep &= (clipped[:, 2] - clipped[:, 0] >= 2) & (clipped[:, 3] - clipped[:, 1] >= 2)
    clipped = tf.where(keep[:, None], clipped, 0.0) / image_size
    if flip:
        view = tf.reverse(view, axis=[1])
        mirrored = tf.stack([1 - clipped[:, 2], clipped[:, 1], 1 - clipped[:, 0], clipped[:, 3]], -1)
        clipped = tf.where(keep[:, None], mirrored, 0.0)
    return view, clipped


def letterboxed(pixels, size, boxes, image_size):
    """The no-augmentation view: the image fitted and centred (the letterbox), boxes 0-1 xyxy."""
    return _affine_view(pixels, size, boxes, image_size, 1.0, tf.zeros(2), False)


def augment(pixels, size, boxes, image_size, seed, zoom=(0.6, 1.4), translate=0.15, flip=True, colour=True):
    """One random view of an image (stateless randomness from `seed`, int32 (2,)) and its boxes."""
    seeds = tf.random.experimental.stateless_split(seed, 6)
    z = tf.random.stateless_uniform((), seeds[0], zoom[0], zoom[1])
    t = tf.random.stateless_uniform((2,), seeds[1], -translate, translate)
    mirrored = tf.random.stateless_uniform((), seeds[2]) < 0.5 if flip else tf.constant(False)
    view, out = tf.cond(
        mirrored,
        lambda: _affine_view(pixels, size, boxes, image_size, z, t, True),
        lambda: _affine_view(pixels, size, boxes, image_size, z, t, False),
    )
    if colour:
        view = view / 255.0
        view = tf.image.stateless_random_saturation(view, 0.6, 1.4, seeds[3])
        view = tf.image.stateless_random_brightness(view, 0.15, seeds[4])
        view = tf.image.stateless_random_hue(view, 0.02, seeds[5])
        view = tf.clip_by_value(view, 0.0, 1.0) * 255.0
    return view, out


def mosaic(pixels, sizes, boxes, labels, index, image_size, seed, colour=True):
    """Image `index` and three others drawn at random, each an augmented view (`augment`) at half the side, tiled
    2 x 2: YOLOv4's mosaic (Bochkovskiy et al. 2020), four images' objects at half their size in one picture.

    Args:
        pixels, sizes, boxes, labels: the cached images (`cache_images`' first four arrays, as tensors).
        index: int, the row of the first image; seed: int32 (2,) for stateless randomness; colour: jitter each tile.
    Returns (image float32 (S, S, 3) 0-255, boxes float32 (4 x MAX_BOXES, 4) 0-1 xyxy with zero rows for none,
    labels int32 (4 x MAX_BOXES,)).
    """
    seeds = tf.random.experimental.stateless_split(seed, 5)
    others = tf.random.stateless_uniform((3,), seeds[0], 0, tf.shape(sizes)[0], dtype=tf.int32)
    rows = tf.concat([tf.cast(index, tf.int32)[None], others], 0)
    half = image_size // 2
    views, tiled_boxes = [], []
    for tile in range(4):
        row = rows[tile]
        view, box = augment(pixels[row], sizes[row], boxes[row], half, seeds[tile + 1], colour=colour)
        offset = tf.constant([tile % 2, tile // 2, tile % 2, tile // 2], tf.float32) * 0.5
        tiled_boxes.append(tf.where(box[:, 2:3] > box[:, 0:1], box * 0.5 + offset, 0.0))
        views.append(view)
    image = tf.concat([tf.concat(views[:2], axis=1), tf.concat(views[2:], axis=1)], axis=0)
    return image, tf.concat(tiled_boxes, 0), tf.reshape(tf.gather(labels, rows), [-1])


def make_detection_dataset(
    cache, indices, anchors, image_size, num_classes, batch_size, training, seed=0, augmentation=True, mosaic_rate=0.0
):
    """Batches of (images float32 (B, S, S, 3) 0-255, (targets per stride)) for `model.fit`.

    `cache` is `cache_images`' output; `indices` select its rows. Training shuffles (seeded, a new order and new
    augmentation every epoch); otherwise the letterboxed views, in order. `mosaic_rate`: the fraction of training
    images that are mosaics of four (`mosaic`; augmentation only).
    """
    pixels, sizes, boxes, labels = (tf.constant(array[indices]) for array in cache[:4])
    anchors = np.asarray(anchors, np.float32)
    dataset = tf.data.Dataset.range(len(indices))
    if training:
        dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.random(seed=seed).batch(2))

        def single(index, seed_pair):
            if augmentation:
                return augment(pixels[index], sizes[index], boxes[index], image_size, seed_pair) + (labels[index],)
            return letterboxed(pixels[index], sizes[index], boxes[index], image_size) + (labels[index],)

        def padded(index, seed_pair):  # a single view with as many box rows as a mosaic
            image, box, label = single(index, seed_pair)
            return image, tf.pad(box, [[0, 3 * MAX_BOXES], [0, 0]]), tf.pad(label, [[0, 3 * MAX_BOXES]])

        def view(index, random_seed):
            seed_pair = tf.cast(random_seed % (2**31 - 1), tf.int32)
            if not (augmentation and mosaic_rate > 0):
                return single(index, seed_pair)
            tiled = tf.random.stateless_uniform((), seed_pair[::-1]) < mosaic_rate
            return tf.cond(
                tiled,
                lambda: mosaic(pixels, sizes, boxes, labels, index, image_size, seed_pair),
                lambda: padded(index, seed_pair),
            )
    else:

        def view(index):
            return letterboxed(pixels[index], sizes[index], boxes[index], image_size) + (labels[index],)

    def with_targets(image, box, label):
        return image, encode_targets(box, label, anchors, image_size, num_classes)

    dataset = dataset.map(view, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(with_targets, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def letterboxed_set(cache, indices, image_size):
    """Letterboxed images (float32 (N, S, S, 3) 0-255) of `cache` rows, their (boxes in canvas pixels, labels), and
    their ignored (difficult, crowd) objects alike: what `DevMAP` and the training-set measurement take."""
    canvases, truths, ignored = [], [], []
    for index in indices:
        aside, aside_labels = cache.ignored[index]
        # One letterbox for both kinds of boxes (the map is row by row): the trained rows first, then the ignored.
        both = np.concatenate([cache[2][index], np.reshape(aside, (-1, 4))]).astype(np.float32)
        view, boxes = letterboxed(tf.constant(cache[0][index]), cache[1][index], tf.constant(both), image_size)
        boxes = boxes.numpy() * image_size
        trained = len(cache[2][index])
        keep = cache[2][index][:, 2] > cache[2][index][:, 0]
        canvases.append(view.numpy())
        truths.append((boxes[:trained][keep], cache[3][index][keep]))
        ignored.append((boxes[trained:], aside_labels))
    return np.stack(canvases), truths, ignored
