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


def make_callbacks(output_dir, patience, monitor="val_loss", backup=True):
    """Early stopping on dev (restoring the best weights), best checkpoint, CSV history, and resumable backups."""
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(output_dir / "best.keras"), monitor=monitor, save_best_only=True),
        keras.callbacks.CSVLogger(str(output_dir / "history.csv"), append=True),
    ]
    if patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True))
    if backup:
        # BackupAndRestore makes an interrupted run resume from its last finished epoch.
        callbacks.append(keras.callbacks.BackupAndRestore(str(output_dir / "backup"), delete_checkpoint=True))
    return callbacks
