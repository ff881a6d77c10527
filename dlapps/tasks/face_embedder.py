"""Face embedders: a face chip in, an L2-normalised 128-D embedding out (the course's f(x) of the face week).

Backbones: dlib's face-recognition ResNet (pretrained with a metric loss, offline weights from the
`face-recognition-models` package), EfficientNet-Lite0 (ImageNet weights, offline) with a new 128-unit projection,
or the compact `small_resnet` from scratch. On unit vectors, squared distance = 2 - 2 cos, so the triplet margin and
the verification threshold are on a fixed scale (0 to 2 in distance) whatever the backbone.
"""

import hashlib

import keras
from keras import layers

FACE_BACKBONES = ("dlib", "efficientnet_lite0", "small_resnet")
CHIP_SIZE = 150
EMBEDDING_SIZE = 128


def build_face_embedder(backbone="dlib", weights="dlib", embedding_size=EMBEDDING_SIZE, name="face_embedder"):
    """An embedding model taking (N, 150, 150, 3) float32 0-255 RGB aligned chips, returning (N, d) unit vectors.

    Args:
        backbone: one of `FACE_BACKBONES`.
        weights: for "dlib": "dlib" (packaged), a `.dat`/`.npz` path, or "none"; for "efficientnet_lite0":
            "imagenet", "none" or a path; "small_resnet" always starts from random weights.
        embedding_size: size of the projection of a backbone without one (dlib's is 128 already).

    Raises:
        ValueError: an unknown backbone, or weights that cannot be found (see each backbone's builder).
    """
    if backbone not in FACE_BACKBONES:
        raise ValueError(f"backbone must be one of {FACE_BACKBONES}. Received: backbone={backbone}")
    weights = None if weights in (None, "none", "None") else weights
    inputs = keras.Input((CHIP_SIZE, CHIP_SIZE, 3), name="chip")
    if backbone == "dlib":
        from dlapps.backbones.dlib_resnet import build_dlib_face_resnet

        x = build_dlib_face_resnet(weights=weights)(inputs)
    else:
        from dlapps.backbones.applications import build_backbone

        base = build_backbone(backbone, (CHIP_SIZE, CHIP_SIZE), weights or "none")
        x = layers.Dense(embedding_size, name="projection")(base(inputs))
    outputs = layers.UnitNormalization(name="embedding")(x)
    return keras.Model(inputs, outputs, name=name)


def model_identity(model):
    """A short identity of a model's weights ("sha256:<12 hex>"): galleries refuse embeddings of another model."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(keras.ops.convert_to_numpy(weight).tobytes())
    return f"sha256:{digest.hexdigest()[:12]}"


def embed_chips(model, chips, batch_size=32):
    """(n, 150, 150, 3) chips (uint8 or float32 0-255) to (n, d) float32 unit embeddings, in batches."""
    import numpy as np

    chips = np.asarray(chips, np.float32)
    outputs = [np.asarray(model(chips[i : i + batch_size], training=False)) for i in range(0, len(chips), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, model.output_shape[-1]), np.float32)


def pk_batches(groups, people_per_batch, images_per_person, seed, jitter=0.0):
    """An endless tf.data stream of P x K batches for online triplet mining (FaceNet's sampling): P people, K chips
    of each (drawn with replacement when a person has fewer), flipped and brightness-jittered (+/- 20 grey levels);
    with `jitter` > 0, also shifted by up to that fraction of the side and zoomed by up to as much (Keras'
    RandomTranslation and RandomZoom, edges reflected), as a detector's alignment of the same face varies.

    Args:
        groups: one uint8 array (n_i, 150, 150, 3) of chips per person (n_i >= 2).
    Yields:
        (float32 (P*K, 150, 150, 3) 0-255 chips, int32 (P*K,) person indices).
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def batches():
        while True:
            chosen = rng.choice(len(groups), min(people_per_batch, len(groups)), replace=False)
            images, labels = [], []
            for label in chosen:
                own = groups[label]
                picks = rng.choice(len(own), images_per_person, replace=len(own) < images_per_person)
                images.append(own[picks])
                labels += [label] * images_per_person
            yield np.concatenate(images).astype(np.float32), np.array(labels, np.int32)

    signature = (tf.TensorSpec((None, CHIP_SIZE, CHIP_SIZE, 3), tf.float32), tf.TensorSpec((None,), tf.int32))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.map(_face_augmentation(seed, jitter), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def labelled_batches(groups, batch_size, seed, jitter=0.0):
    """A tf.data pass over every chip of `groups` (shuffled anew each pass), labelled with its group's index and
    augmented as `pk_batches` does: the batches of a classification loss over identities (`CosFaceLoss`).

    Yields:
        (float32 (batch, 150, 150, 3) 0-255 chips, int32 (batch,) person indices).
    """
    import numpy as np
    import tensorflow as tf

    images = np.concatenate(groups)
    labels = np.concatenate([np.full(len(own), label, np.int32) for label, own in enumerate(groups)])
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(images), seed=seed)
    dataset = dataset.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y))
    return dataset.map(_face_augmentation(seed, jitter), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _face_augmentation(seed, jitter):
    """The training chips' augmentation (see `pk_batches`), a function of a batch (images, labels)."""
    import tensorflow as tf

    moves = []
    if jitter > 0:
        moves = [keras.layers.RandomTranslation(jitter, jitter, fill_mode="reflect", seed=seed),
                 keras.layers.RandomZoom(jitter, fill_mode="reflect", seed=seed)]  # fmt: skip

    def augment(images, labels):
        images = tf.image.random_flip_left_right(images, seed=seed)
        for move in moves:
            images = move(images, training=True)
        images = tf.clip_by_value(images + tf.random.uniform((tf.shape(images)[0], 1, 1, 1), -20.0, 20.0), 0, 255)
        return images, labels

    return augment


class DevPairs(keras.callbacks.Callback):
    """Puts the dev pairs' LFW 10-fold accuracy (`val_pair_accuracy`) in each epoch's logs, for checkpoints and early
    stopping: `chips` float32 (n, 150, 150, 3) 0-255 of people held out of training, `pairs` (m, 2) indices into
    them, `same` (m,) 1 for same-person pairs. `embedder`: the model to measure when training fits another one
    around it (a classifier for the CosFace warm-up); by default, the model being trained."""

    def __init__(self, chips, pairs, same, on_measure=None, embedder=None):
        super().__init__()
        self.chips, self.pairs, self.same, self.on_measure, self.embedder = chips, pairs, same, on_measure, embedder

    def distances(self, model=None):
        import numpy as np

        embeddings = embed_chips(model or self.embedder or self.model, self.chips)
        return np.linalg.norm(embeddings[self.pairs[:, 0]] - embeddings[self.pairs[:, 1]], axis=1)

    def on_epoch_end(self, epoch, logs=None):
        from dlapps.metrics.verification import ten_fold_accuracy

        accuracy, _ = ten_fold_accuracy(self.distances(), self.same)
        if logs is not None:
            logs["val_pair_accuracy"] = accuracy
        if self.on_measure:
            self.on_measure(epoch + 1, logs or {})


def triplet_phases(model, backbone, weights, learning_rate, margin, mining, epochs, head_epochs=3,
                   fine_tune_fraction=1.0, warmup_epochs=0, warmup_data=None, identities=0):  # fmt: skip
    """`dlapps.training.fit_phases` phases for triplet training (`dlapps.losses.triplet.TripletLoss`).

    An ImageNet backbone first trains its new projection on the frozen base for `head_epochs` at 10x the rate
    (the fine-tuner's two phases), then the top `fine_tune_fraction` of the base (all of it at 1.0) but its batch
    norm at `learning_rate`; dlib's network (already a face embedder) and a network from scratch train whole in one
    phase.

    With `warmup_epochs` > 0, a CosFace warm-up comes first (`dlapps.losses.cosface`; softmax pre-training before
    the triplet loss, as in Parkhi et al. 2015, "Deep Face Recognition"): the network under a `CosineClassifier`
    over the `identities` training people, fitted on `warmup_data` (`labelled_batches`, one pass an epoch) at 3x
    the rate on a cosine decay. For an ImageNet backbone the head phase then trains the projection and the
    classifier (phase "warmup_head"), and the warm-up goes on with the base as in fine-tuning ("warmup"); the
    triplet phase that follows needs no head phase of its own. The classifier is dropped afterwards: the saved
    model is the embedder. Each phase names its loss ("loss": "CosFace" or "triplet") for the training curves.
    """
    from dlapps.losses.cosface import CosFaceLoss, CosineClassifier
    from dlapps.losses.triplet import TripletLoss
    from dlapps.training import unfreeze_top

    def compile_with(rate):
        model.compile(keras.optimizers.Adam(rate), loss=TripletLoss(margin, mining))

    bases = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    pretrained_base = backbone == "efficientnet_lite0" and weights not in (None, "none", "None") and bases
    base = bases[0] if pretrained_base else None
    if warmup_epochs:  # one classifier around the embedder, shared by the warm-up phases
        inputs = keras.Input(model.input_shape[1:], name="chip")
        classifier = keras.Model(inputs, CosineClassifier(identities, name="identities")(model(inputs)))

    def warm(rate):
        classifier.compile(keras.optimizers.Adam(rate), loss=CosFaceLoss())
        return {"model": classifier, "train_data": warmup_data}

    def warmup_head(model):
        base.trainable = False
        return warm(learning_rate * 10)

    def warmup(model):
        if base is not None:
            unfreeze_top(base, fraction=fine_tune_fraction)
        else:
            model.trainable = True
        steps = warmup_epochs * int(warmup_data.cardinality())
        return warm(keras.optimizers.schedules.CosineDecay(learning_rate * 3, max(steps, 1)))

    phases = []
    if warmup_epochs:
        if base is not None:
            phases.append({"name": "warmup_head", "epochs": head_epochs, "prepare": warmup_head, "loss": "CosFace",
                           "description": "CosFace: the projection on the frozen base"})  # fmt: skip
        phases.append({"name": "warmup", "epochs": warmup_epochs, "prepare": warmup, "loss": "CosFace",
                       "description": "CosFace"})  # fmt: skip

    if base is not None:

        def head(model):
            base.trainable = False
            compile_with(learning_rate * 10)

        def fine_tune(model):
            unfreeze_top(base, fraction=fine_tune_fraction)
            compile_with(learning_rate)

        if not warmup_epochs:
            phases.append({"name": "head", "epochs": head_epochs, "prepare": head, "loss": "triplet"})
        return [*phases, {"name": "fine_tune", "epochs": epochs, "prepare": fine_tune, "loss": "triplet"}]

    def whole(model):
        model.trainable = True
        compile_with(learning_rate)

    return [*phases, {"name": "train", "epochs": epochs, "prepare": whole, "loss": "triplet"}]
