"""Training helpers shared by the classifier apps: optimisers, learning-rate decay, callbacks."""

import keras

OPTIMIZERS = ("adam", "sgd", "rmsprop")
LR_DECAYS = ("none", "inverse_time", "exponential", "cosine")


def make_learning_rate(learning_rate, decay, steps_per_epoch, epochs, decay_rate=1.0):
    """A constant rate or one of the course's decays, counted in epochs.

    `inverse_time` is the course's lr / (1 + decay_rate * epoch); `exponential` multiplies by 0.95^epoch
    (scaled by decay_rate); `cosine` anneals to zero over the run.
    """
    if decay not in LR_DECAYS:
        raise ValueError(f"lr decay must be one of {LR_DECAYS}. Received: lr_decay={decay}")
    steps_per_epoch = max(1, int(steps_per_epoch))
    if decay == "none":
        return learning_rate
    if decay == "inverse_time":
        return keras.optimizers.schedules.InverseTimeDecay(learning_rate, steps_per_epoch, decay_rate)
    if decay == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(learning_rate, steps_per_epoch, 0.95**decay_rate)
    return keras.optimizers.schedules.CosineDecay(learning_rate, steps_per_epoch * max(1, epochs))


def make_optimizer(name, learning_rate, momentum=0.9):
    """Adam, SGD with (Nesterov-free) momentum, or RMSprop."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}. Received: optimizer={name}")


def make_callbacks(output_dir, patience, monitor="val_loss", backup=True, suffix="", tensorboard=False):
    """Resumable backups, best checkpoint, CSV history, early stopping on dev (best weights restored), TensorBoard.

    Args:
        output_dir: the run's folder (a `pathlib.Path`).
        patience: early-stopping patience in epochs; `None` turns early stopping off.
        monitor: the dev metric to watch.
        backup: back up every epoch for resuming an interrupted run.
        suffix: added to every file name, e.g. "_phase1" gives backup_phase1/, best_phase1.keras,
            history_phase1.csv and logs/phase1.
        tensorboard: also write TensorBoard logs under `output_dir/logs`.
    """
    callbacks = []
    if backup:
        # First, so that an epoch is backed up before it is logged. double_checkpoint keeps the previous backup too,
        # so a process killed while writing one resumes from the other.
        callbacks.append(keras.callbacks.BackupAndRestore(str(output_dir / f"backup{suffix}"), double_checkpoint=True))
    callbacks += [
        keras.callbacks.ModelCheckpoint(str(output_dir / f"best{suffix}.keras"), monitor=monitor, save_best_only=True),
        keras.callbacks.CSVLogger(str(output_dir / f"history{suffix}.csv"), append=True),
    ]
    if patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True))
    if tensorboard:
        logs = output_dir / "logs" / (suffix.lstrip("_") or "train")
        callbacks.append(keras.callbacks.TensorBoard(str(logs), write_graph=False))
    return callbacks


def fit_multi_worker(
    model, dataset, epochs, learning_rate, strategy, global_batch_size, class_weight=None, on_epoch_end=None
):
    """Train a softmax classifier with MultiWorkerMirroredStrategy through `strategy.run`, one step per batch.

    Why not `fit()`: Keras 3's fit() fails under MultiWorkerMirroredStrategy (it reduces scalar logs along axis 0
    and cannot reduce a multi-worker batch for its symbolic build; keras-team/keras#20585). This loop is the
    tf.distribute custom-training recipe: per-replica loss averaged over the global batch, gradients all-reduced
    by the Keras optimizer, so every worker ends each step with the same weights.

    Args:
        model: a Keras classifier built under `strategy.scope()`.
        dataset: a batched `tf.data.Dataset` of (images, int labels).
        epochs: number of passes over `dataset`.
        learning_rate: Adam learning rate.
        strategy: the `tf.distribute.MultiWorkerMirroredStrategy`.
        global_batch_size: the batch size of `dataset`, which the workers share.
        class_weight: optional {class index: weight} applied to the per-example loss.
        on_epoch_end: called as on_epoch_end(epoch, mean_train_loss).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    distributed = strategy.experimental_distribute_dataset(dataset.with_options(options))
    with strategy.scope():
        optimizer = keras.optimizers.Adam(learning_rate)
        per_example_loss = keras.losses.SparseCategoricalCrossentropy(reduction="none")
    weights = None
    if class_weight:
        weights = tf.constant([class_weight[i] for i in range(len(class_weight))], tf.float32)

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            losses = per_example_loss(labels, model(images, training=True))
            if weights is not None:
                losses = losses * tf.gather(weights, labels)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch_size)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function
    def train_step(images, labels):
        return strategy.reduce("SUM", strategy.run(replica_step, args=(images, labels)), axis=None)

    for epoch in range(epochs):
        total, steps = 0.0, 0
        for images, labels in distributed:
            total += float(train_step(images, labels))
            steps += 1
        if on_epoch_end:
            on_epoch_end(epoch, total / max(1, steps))
