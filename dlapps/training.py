"""Training shared by every app: optimisers, learning-rate decay, callbacks, and the resumable phase loop."""

import contextlib
import logging
import time
import warnings

import keras

LOG = logging.getLogger("dlapps")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LR_DECAYS = ("none", "inverse_time", "exponential", "cosine")


@contextlib.contextmanager
def fit_notices_silenced():
    """Keras' notices that do not apply to our pipelines, silenced inside the block only (the process's warning
    filters are restored after it): fit() ignores shuffle=True for a tf.data input (our pipelines shuffle
    themselves), and a dataset whose unreadable files were dropped has an unknown length ("ran out of data")."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shuffle=True.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*ran out of data.*", category=UserWarning)
        yield


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


def make_optimizer(name, learning_rate, momentum=0.9, weight_decay=None, ema_momentum=0.0, nesterov=False):
    """Adam, AdamW (decoupled `weight_decay`, Loshchilov & Hutter 2019), SGD with momentum (Nesterov's with
    `nesterov`; `weight_decay` too), or RMSprop; with `ema_momentum` > 0, Keras keeps an exponential moving average of
    the weights (`use_ema`, swapped in by `fit_phases`)."""
    ema = {"use_ema": ema_momentum > 0, "ema_momentum": ema_momentum or 0.99}
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, **ema)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, **ema)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                                    **ema)  # fmt: skip
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, **ema)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}. Received: optimizer={name}")


def make_strategy(name):
    """A tf.distribute strategy: one device, all local GPUs (mirrored), or several hosts (multi_worker, TF_CONFIG)."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"strategy must be default, mirrored or multi_worker. Received: strategy={name}")


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


# === Phases, resume, early stopping that survive an interruption ===


def read_history(path):
    """Rows of a CSVLogger file as a list of {column: float} (an empty list when the file is missing)."""
    import csv
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        return []
    with path.open() as file:
        return [
            {key: float(value) for key, value in row.items() if value not in ("", None)} for row in csv.DictReader(file)
        ]


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping whose best value and waiting count continue from the phase's history after `--resume`.

    Keras' EarlyStopping starts counting afresh in every `fit()`; resumed from a backup, it would forget the best
    epoch before the interruption, and the resumed run would stop at other epochs than an uninterrupted one.
    """

    def __init__(self, history_file, monitor="val_loss", mode="min", **kwargs):
        super().__init__(monitor=monitor, mode=mode, **kwargs)
        self.history_file, self.lower_is_better = history_file, mode == "min"

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        values = [row[self.monitor] for row in read_history(self.history_file) if self.monitor in row]
        for epoch, value in enumerate(values):
            # The same counting as EarlyStopping.on_epoch_end: wait grows every epoch and restarts on improvement.
            self.wait += 1
            improved = self.best is None or (value < self.best if self.lower_is_better else value > self.best)
            if improved:
                self.best, self.best_epoch, self.wait = value, epoch, 0


class StopOnNaN(keras.callbacks.Callback):
    """Stop training when the loss becomes NaN or infinite, remembering the epoch (Keras' TerminateOnNaN is silent)."""

    def __init__(self):
        super().__init__()
        self.nan_epoch = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        import math

        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nan_epoch = self.epoch
            self.model.stop_training = True


class LogProgress(keras.callbacks.Callback):
    """Progress inside long epochs where Keras' bar cannot draw (a log file: `verbose=2` prints one line an epoch):
    a line every `every` seconds with the step, the time spent and an estimate of the epoch's time left; and at each
    epoch's end, the phase's time left at the pace so far. Keras has the bar for a terminal, nothing for a log."""

    def __init__(self, epochs, every=30.0, write=print):
        super().__init__()
        self.epochs, self.every, self.write = epochs, every, write
        self.steps = None

    def on_train_begin(self, logs=None):
        self.steps = self.params.get("steps") if self.params else None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.epoch_started = epoch, time.perf_counter()
        self.last = self.epoch_started

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now - self.last < self.every:
            return
        self.last, spent = now, now - self.epoch_started
        left = f", about {_duration(spent * (self.steps / (batch + 1) - 1))} left in it" if self.steps else ""
        of = f"/{self.steps}" if self.steps else ""
        self.write(f"  epoch {self.epoch + 1}: step {batch + 1}{of}, {_duration(spent)}{left}", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        remaining = self.epochs - (epoch + 1)
        if remaining > 0 and time.perf_counter() - self.epoch_started >= self.every:
            pace = time.perf_counter() - self.epoch_started
            self.write(f"  about {_duration(pace * remaining)} left in this phase ({remaining} epochs)", flush=True)


def _duration(seconds):
    """Seconds as a person reads them: 45 s, 3 min 20 s, 1 h 05 min."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and the checkpoint that was kept."""


def flat_layers(model):
    """Every layer of a model, nested models opened."""
    layers = []
    for layer in model.layers:
        layers.extend(flat_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return layers


def base_layers(base):
    """The layers `--fine-tune-from` indices count: every layer of the base, nested models opened, inputs left out."""
    return [layer for layer in flat_layers(base) if not isinstance(layer, keras.layers.InputLayer)]


def unfreeze_top(base, fine_tune_from=None, fraction=1.0):
    """Unfreeze a pretrained base from a layer (name or index; default: its top `fraction`), batch norm excepted
    (it keeps its ImageNet statistics: small data sets estimate them badly).

    Returns the index and name of the first unfrozen layer. Raises ValueError for a name not in the base.
    """
    start = unfreeze_start(base, fine_tune_from, fraction)
    base.trainable = True
    layers = base_layers(base)
    for index, layer in enumerate(layers):
        layer.trainable = index >= start and not isinstance(layer, keras.layers.BatchNormalization)
    return start, layers[start].name


def recalibrate_batch_norm(model, images, batch_size=16):
    """Recompute the moving statistics of the trainable batch-norm layers as the plain mean over `images`
    ("precise BN", Wu & Johnson 2021, Rethinking "Batch" in BatchNorm): on small data the moving averages lag the
    weights, and inference with them can score far below the same weights with batch statistics.

    Args:
        model: a Keras model; frozen batch-norm layers (trainable=False) keep their statistics.
        images: array (N, ...) of inputs as the model takes them, without augmentation.
    """
    import keras as _keras

    layers = [layer for layer in flat_layers(model)
              if isinstance(layer, _keras.layers.BatchNormalization) and layer.trainable]  # fmt: skip
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    try:
        for index, start in enumerate(range(0, len(images), batch_size)):
            for layer in layers:
                layer.momentum = index / (index + 1)  # a running mean over batches: the first batch replaces.
            model(images[start : start + batch_size], training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


def save_atomically(model, path):
    """Write a .keras file under a temporary name and rename it: a killed process never leaves half a model.

    The file holds the architecture and weights only: no optimizer state (a third to two thirds of the size for
    Adam) and no compile settings. Every reader loads with compile=False, and resuming recompiles each phase.
    """
    temporary = path.with_name(f".{path.stem}.tmp.keras")
    # A functional model is saved through an uncompiled twin sharing its layers (and so its weights).
    bare = (
        keras.Model(model.inputs, model.outputs, name=model.name)
        if getattr(model, "_is_graph_network", False)
        else model
    )
    bare.save(temporary)
    temporary.replace(path)


def _epoch_logger(phase, epochs):
    """A Keras callback logging each epoch's figures at INFO on the `dlapps` logger ("head epoch 3/25: loss 0.061,
    val_map50 0.77"): progress for a Python caller, where Keras prints nothing."""

    def log(epoch, logs):
        figures = ", ".join(
            f"{key} {value:.4g}" for key, value in (logs or {}).items() if isinstance(value, float | int)
        )
        LOG.info("%s epoch %d/%d: %s", phase, epoch + 1, epochs, figures)

    return keras.callbacks.LambdaCallback(on_epoch_end=log)


def fit_phases(model, phases, train_data, dev_data, output_dir, patience, verbose=1, class_weight=None,
               monitor="val_loss", start_phase=0, tensorboard=True, extra_callbacks=(), mode="min",
               metric_callbacks=()):  # fmt: skip
    """Train through phases (e.g. a head on a frozen base, then fine-tuning), resumable after any interruption.

    Each phase `p` is a dict with `name`, `epochs`, `prepare(model)` (freezes or unfreezes layers and compiles) and
    optionally `description` (printed above its epochs, e.g. "the head on the frozen base").
    `prepare` may return a dict of `model`, `train_data` and `dev_data` that the phase fits instead (e.g. a head
    sharing the model's layers, on features computed once: see `head_on_features`); the model is saved as usual.
    Every epoch is backed up (`backup_<name>/`) and logged (`history_<name>.csv`); the best epoch on `monitor` is
    saved to `best_<name>.weights.h5`, also across an interruption, and is what the phase ends with; a finished phase is
    saved to `<name>.keras` so that `--resume` starts the next phase from it, in full. A NaN loss stops training
    and raises `TrainingDiverged`, keeping the best checkpoint.

    Args:
        model: the Keras model (rebuilt or reloaded by the caller when resuming).
        phases: the list of phase dicts.
        train_data, dev_data: datasets of (images, labels).
        output_dir: the run folder (`pathlib.Path`).
        patience: early-stopping patience in epochs (`None`: off).
        start_phase: index of the first phase still to run (from `state.json` when resuming).
        mode: "min" (a loss) or "max" (e.g. dev mAP) for `monitor`.
        metric_callbacks: callbacks that compute `monitor` into the epoch's logs (run before checkpointing).

    Returns:
        {phase name: {"epochs": int, "best_epoch": int (1-based), "best": float}, "kept": the phase whose best
        weights the model ends with (the last, unless an earlier phase was better on `monitor`)}.
    """
    import json

    output_dir.mkdir(parents=True, exist_ok=True)
    summary = {}
    best_of = min if mode == "min" else max
    for index, phase in enumerate(phases):
        name = phase["name"]
        history_file = output_dir / f"history_{name}.csv"
        # Weights only: saving and reading back a whole .keras file cost about a second each (measured on Lite0).
        best_file = output_dir / f"best_{name}.weights.h5"
        # The epoch and `monitor` value of the weights in best_file, written once they are (the history may hold a
        # better epoch whose checkpoint a killed process never finished).
        best_mark = output_dir / f"best_{name}.json"
        if index < start_phase:
            summary[name] = _phase_summary(history_file, monitor, mode, best_mark)
            continue
        overrides = phase["prepare"](model) or {}
        trained = overrides.get("model", model)
        previous = [row[monitor] for row in read_history(history_file) if monitor in row]
        kept = json.loads(best_mark.read_text())["best"] if best_file.exists() and best_mark.exists() else None
        if kept is None and best_file.exists() and previous:  # a run from before the marks
            kept = best_of(previous)
        # Written under a temporary name, then renamed: a process killed while writing keeps the previous best.
        best_written = output_dir / f".best_{name}.tmp.weights.h5"
        best_written.unlink(missing_ok=True)

        def keep_best(epoch, logs, src=best_written, dst=best_file, mark=best_mark):
            if src.exists():
                src.replace(dst)
                mark.write_text(json.dumps({"best_epoch": epoch + 1, "best": float((logs or {})[monitor])}))

        stop_on_nan = StopOnNaN()
        callbacks = [
            *metric_callbacks,  # dev measures first: an epoch is backed up only once it can be logged in full
            # double_checkpoint keeps the previous backup, so a process killed while writing one resumes from the
            # other. The epoch is logged right after its backup: a process killed in between (or later, while the
            # best checkpoint is written) neither loses the epoch from the history nor logs it twice.
            keras.callbacks.BackupAndRestore(str(output_dir / f"backup_{name}"), double_checkpoint=True),
            keras.callbacks.CSVLogger(str(history_file), append=True),
            stop_on_nan,
            *_ema_swap(trained),  # after the backup (which keeps the raw weights), before the best checkpoint
            keras.callbacks.ModelCheckpoint(
                str(best_written), monitor=monitor, save_best_only=True, save_weights_only=True, mode=mode,
                initial_value_threshold=kept,
            ),
            keras.callbacks.LambdaCallback(on_epoch_end=keep_best),
            *extra_callbacks,
        ]  # fmt: skip
        if patience is not None:
            callbacks.append(ResumableEarlyStopping(history_file, monitor=monitor, mode=mode, patience=patience))
        if tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(str(output_dir / "logs" / name), write_graph=False))
        if verbose == 2:  # a log file: Keras prints one line an epoch, this adds the steps and the time left
            callbacks.append(LogProgress(phase["epochs"]))
        if not verbose:  # Keras silent (--json, or a Python caller): each epoch's figures to the dlapps logger
            callbacks.append(_epoch_logger(name, phase["epochs"]))
        # BackupAndRestore resumes by setting model._initial_epoch, which Keras never clears: left set, the next
        # phase's fit() would start part-way (or, past its epochs, be skipped). Each phase starts from its own backup.
        trained._initial_epoch = None
        if verbose and len(phases) > 1:  # the epoch lines of each phase under its name
            about = f", {phase['description']}" if phase.get("description") else ""
            LOG.info("%s (%s epoch%s%s)", name, phase["epochs"], "" if phase["epochs"] == 1 else "s", about)
        with fit_notices_silenced():
            trained.fit(
                overrides.get("train_data", train_data), validation_data=overrides.get("dev_data", dev_data),
                epochs=phase["epochs"], class_weight=class_weight, callbacks=callbacks, verbose=verbose,
            )  # fmt: skip
        if best_file.exists():
            # The best epoch of the whole phase, interruptions included.
            trained.load_weights(best_file)
        if stop_on_nan.nan_epoch is not None:
            kept = f"the best weights before it are in {best_file}" if best_file.exists() else "no epoch finished"
            raise TrainingDiverged(
                f"the loss became NaN in {name} epoch {stop_on_nan.nan_epoch + 1}; {kept}. "
                "Lower --learning-rate and train again"
            )
        save_atomically(model, output_dir / f"{name}.keras")
        (output_dir / "state.json").write_text(json.dumps({"phase_done": index + 1}))
        summary[name] = _phase_summary(history_file, monitor, mode, best_mark)
    # A later phase that never beat an earlier one on dev (fine-tuning a small data set can do that): keep the
    # earlier phase's result.
    scored = [name for name in summary if summary[name]["best"] is not None]
    if scored:
        best = best_of(scored, key=lambda name: summary[name]["best"])
        if best != scored[-1] and (output_dir / f"{best}.keras").exists():
            model.set_weights(keras.saving.load_model(output_dir / f"{best}.keras", compile=False).get_weights())
        summary["kept"] = best
    return summary


def _ema_swap(model):
    """[SwapEMAWeights] when the model's optimizer keeps a moving average of the weights (`use_ema`), else [].

    Dev is then measured on the averaged weights, and the best checkpoint holds them; between epochs the raw
    weights are swapped back, so training (and the per-epoch backup) goes on from them. `metric_callbacks` run
    before the swap and so see the raw weights: no app combines them with a weight average yet.
    """
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer under --mixed-precision
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if getattr(optimizer, "use_ema", False) else []


def average_of(members, name="seed_ensemble"):
    """One model whose output is the mean of its members' outputs: a seed ensemble (the same data, different
    initial weights and augmentation order), as in Lakshminarayanan et al. 2017, "Simple and Scalable Predictive
    Uncertainty Estimation using Deep Ensembles". Keras has the averaging layer but no ensemble model.

    Args:
        members: Keras models with the same input shape and the same output shape (e.g. (N, C) probabilities).
    Returns:
        A functional model taking the members' input; each member is a nested model named member1, member2, ...
    """
    inputs = keras.Input(members[0].input_shape[1:], name="image")
    outputs = [
        keras.Model(member.input, member.output, name=f"member{k + 1}")(inputs) for k, member in enumerate(members)
    ]
    return keras.Model(inputs, keras.layers.Average(name="mean_of_members")(outputs), name=name)


def fit_seed_ensemble(make_member, count, output_dir, patience, seed, score, verbose=1, class_weight=None):
    """Train `count` networks one after another, each from its own seed, then average them (`average_of`).

    Member k trains with `fit_phases` in `output_dir/member<k>/`, so an interrupted ensemble resumes inside the member
    it stopped in; its curves (`history_member<k>_<phase>.csv`) and TensorBoard logs are copied beside the ensemble.
    Delete the member folders (`remove_member_folders`) once the ensemble is saved.

    Args:
        make_member: called as make_member(k, seed, folder, done) with k from 0, returns (model, phases,
            train_data, dev_data); `done` phases of the member already finished in `folder`, so the model to return
            is then `finished_phase_model(folder, phases, done)`.
        count: number of members (>= 1).
        seed: member k trains with seed + k (weights, augmentation, order).
        score: score(model) -> {name: float} of one trained member (e.g. its dev accuracy), kept in its record.
    Returns:
        (the ensemble model, {"member<k>_<phase>": `fit_phases` summary}, [{"member": k, "seed": s, **score,
        "kept": the phase whose weights the member ends with}],
        the phases of the first member renamed "member1_<phase>", whose curves stand for the run's).
    """
    import shutil

    summary, members, models, first_phases = {}, [], [], None
    for k in range(count):
        folder = output_dir / f"member{k + 1}"
        keras.utils.set_random_seed(seed + k)
        done = phase_done(folder)
        model, phases, train_data, dev_data = make_member(k, seed + k, folder, done)
        if verbose:
            LOG.info("member %d of %d (seed %d)", k + 1, count, seed + k)
        result = fit_phases(
            model, phases, train_data, dev_data, folder, patience,
            verbose=verbose, class_weight=class_weight, start_phase=done,
        )  # fmt: skip
        summary.update({f"member{k + 1}_{name}": value for name, value in result.items() if name != "kept"})
        members.append({"member": k + 1, "seed": seed + k, **score(model), "kept": result.get("kept")})
        models.append(model)
        first_phases = first_phases or phases
        for history in folder.glob("history_*.csv"):
            shutil.copy(history, output_dir / f"history_member{k + 1}_{history.stem.removeprefix('history_')}.csv")
        if (folder / "logs").exists():
            shutil.copytree(folder / "logs", output_dir / "logs" / f"member{k + 1}", dirs_exist_ok=True)
    renamed = [{"name": f"member1_{phase['name']}"} for phase in first_phases]
    return average_of(models), summary, members, renamed


def remove_member_folders(output_dir, count):
    """Delete `fit_seed_ensemble`'s member folders (their resume files), once the ensemble is saved."""
    import shutil

    for k in range(count):
        shutil.rmtree(output_dir / f"member{k + 1}", ignore_errors=True)


def phase_done(output_dir):
    """How many phases of an interrupted `fit_phases` run in `output_dir` finished (0 for a new run)."""
    import json

    state = output_dir / "state.json"
    return json.loads(state.read_text()).get("phase_done", 0) if state.exists() else 0


def finished_phase_model(output_dir, phases, done, compile=True):
    """The model saved at the end of phase `done` (1-based) of an interrupted `fit_phases` run, to resume from;
    None when no phase finished (`done` 0). `phases`: the run's phase dicts, or their names."""
    if not done:
        return None
    phase = phases[done - 1]
    name = phase if isinstance(phase, str) else phase["name"]
    return keras.saving.load_model(output_dir / f"{name}.keras", compile=compile)


def phase_report(summary, better="dev loss"):
    """One line from a `fit_phases` summary: each phase's best epoch, and which phase's weights were kept when an
    earlier phase beat the last one (`better` names the measure, e.g. "dev mAP@0.5")."""
    phases = {name: value for name, value in summary.items() if name != "kept"}
    line = "; ".join(f"{name}: best epoch {value['best_epoch']} of {value['epochs']}" for name, value in phases.items())
    if len(phases) > 1 and summary.get("kept", list(phases)[-1]) != list(phases)[-1]:
        line += f"; kept {summary['kept']}'s weights (better {better} than the later phase)"
    return line


def fit_phases_multi_worker(model, phases, train_data, global_batch_size, strategy, class_weight=None, report=None):
    """`fit_phases` for MultiWorkerMirroredStrategy, each phase through `fit_multi_worker` (Keras' fit() fails
    there): no early stopping, checkpoints or resume, since every worker must run the same number of steps.
    `report(phase name, epoch, mean loss)` is called after each epoch."""
    for phase in phases:
        phase["prepare"](model)
        learning_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))

        def on_epoch_end(epoch, loss, name=phase["name"]):
            if report:
                report(name, epoch, loss)

        fit_multi_worker(
            model, train_data, phase["epochs"], learning_rate, strategy, global_batch_size, class_weight, on_epoch_end
        )


def balanced_class_weights(labels, num_classes):
    """{class index: weight} that make every class weigh as much in the loss as a balanced data set would
    (n / (C * n_c), scikit-learn's "balanced" rule); a class without examples gets n / C."""
    import numpy as np

    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    weights = len(labels) / (num_classes * np.maximum(counts, 1))
    return {index: float(weight) for index, weight in enumerate(weights)}


def unfreeze_start(base, fine_tune_from=None, fraction=1.0):
    """The index (in `base_layers(base)`) of the first layer `unfreeze_top` would unfreeze.

    fine_tune_from: a layer name, an index (negative: counted from the end, as in Python), or empty for the top
    `fraction` of the layers.

    Raises ValueError for a name not in the base (naming the closest names) or an index outside it.
    """
    import difflib

    layers = base_layers(base)
    names = [layer.name for layer in layers]
    if str(fine_tune_from).lstrip("-").isdigit():
        index = int(fine_tune_from)
        if not -len(layers) <= index < len(layers):
            raise ValueError(
                f"--fine-tune-from {index}: the base has {len(layers)} layers, so an index is from 0 to "
                f"{len(layers) - 1} (or -{len(layers)} to -1, counted from the end)"
            )
        return index % len(layers)
    if fine_tune_from:
        if fine_tune_from not in names:
            close = difflib.get_close_matches(str(fine_tune_from), names, n=5, cutoff=0.5)
            hint = f"closest: {', '.join(close)}" if close else f"its layers run from {names[0]} to {names[-1]}"
            raise ValueError(f"--fine-tune-from: the base has no layer named '{fine_tune_from}' ({hint})")
        return names.index(fine_tune_from)
    return int(len(layers) * (1 - fraction))


def frozen_cut(base, start):
    """The tensor of a functional base that everything from layer `start` on depends on: the output of the frozen
    part of a base unfrozen from `start`, moved back to the nearest point where one tensor joins the two parts (a
    residual block is never cut in half). None when the base holds nested models or shared layers.

    Returns a KerasTensor of `base`'s graph (e.g. EfficientNet-Lite0 at 224 px unfrozen from its top 20%: the output
    of block6b, shape (None, 7, 7, 192)), or `base.input` when no later point joins the parts.
    """
    layers = [layer for layer in base.layers if not isinstance(layer, keras.layers.InputLayer)]
    if any(isinstance(layer, keras.Model) or len(layer._inbound_nodes) != 1 for layer in layers):
        return None
    for cut in range(min(start, len(layers)), 0, -1):
        later = {id(layer) for layer in layers[cut:]}
        frontier = {
            id(tensor): tensor
            for layer in layers[cut:]
            for tensor in keras.tree.flatten(layer._inbound_nodes[0].input_tensors)
            if id(tensor._keras_history.operation) not in later
        }
        if len(frontier) == 1:
            return next(iter(frontier.values()))
    return base.input


def head_on_features(model, base_name, cut=None):
    """The part of a chain-shaped functional model (input -> base -> dropout -> dense ...) after a point, as a model
    that takes that point's tensor: after the base by default, or after `cut`, a tensor inside the base (see
    `frozen_cut`). It shares the layers, so training it trains `model`.

    Returns a Keras model whose input has the shape of the base's output (batch, features), or of `cut`.
    """
    base = model.get_layer(base_name)
    x = inputs = keras.Input((cut if cut is not None else base.output).shape[1:], name="features")
    if cut is not None:
        x = keras.Model(cut, base.output, name=f"{base_name}_top")(x)
    for layer in model.layers[model.layers.index(base) + 1 :]:
        x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_head")


def feature_arrays(extractor, dataset, flip=False):
    """`extractor` run once over a dataset of (images, labels) batches: (labels, features) as NumPy arrays.

    flip: of the horizontally mirrored images (the one augmentation that survives computing features once).
    """
    import tensorflow as tf

    from dlapps.inference import dataset_outputs

    if flip:
        dataset = dataset.map(lambda images, labels: (tf.reverse(images, axis=[2]), labels))
    return dataset_outputs(extractor, dataset)


def feature_dataset(features, labels, batch_size, shuffle_seed=None, flipped=None):
    """Features computed once (see `feature_arrays`) as a dataset of (features, labels) batches held in memory.

    Training a head (or the unfrozen top of a base) on these costs a fraction of a second per epoch instead of a
    forward pass of the frozen part each epoch (Chollet, Deep Learning with Python, "fast feature extraction"), at
    the price of the image augmentations. `flipped`: the features of the mirrored images; each example is drawn
    from one of the two at random every epoch. `shuffle_seed`: reshuffle every epoch (training); None: in order.
    """
    import tensorflow as tf

    if flipped is None:
        data = tf.data.Dataset.from_tensor_slices((features, labels))
    else:
        data = tf.data.Dataset.from_tensor_slices(((features, flipped), labels))
    if shuffle_seed is not None:
        data = data.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    if flipped is not None:
        seed = 0 if shuffle_seed is None else shuffle_seed

        def either(pair, label):
            return tf.where(tf.random.uniform([], seed=seed) < 0.5, pair[0], pair[1]), label

        data = data.map(either)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# Features of a frozen part are held in memory up to this size; beyond it, `frozen_part_features` cuts nothing.
MAX_CACHED_BYTES = 2 * 1024**3


def frozen_part_features(model, base_name, start, feature_data, batch_size, seed, flip=True,
                         max_bytes=MAX_CACHED_BYTES):  # fmt: skip
    """The datasets of a two-phase transfer (a head on a frozen base, then the base's top unfrozen from layer `start`)
    from one forward pass of the frozen part.

    The frozen part (everything below `start`, cut at a block boundary: `frozen_cut`) gives the same output every
    epoch: computed once over the training images, their mirror images (`flip`: the augmentation kept) and the dev
    images, phase 2 trains the unfrozen top on it, and phase 1's features are the frozen top run once over it.

    Args:
        model: a chain-shaped functional model with the base as its layer `base_name` (see `head_on_features`).
        start: the first layer phase 2 unfreezes (`unfreeze_start`), or None for no phase 2.
        feature_data: {"train": dataset, "dev": dataset, "examples": int}: (images, labels) batches, un-augmented.
        batch_size, seed: of the datasets returned (training shuffled with `seed`).
        max_bytes: features bigger than this are not held for phase 2 ("cut" None: it trains on images).
    Returns:
        {"phase1": {"train_data", "dev_data"}, "phase2": {"train_data", "dev_data"} or None, "cut": the KerasTensor
        of the base that phase 2's model starts from (`head_on_features(model, base_name, cut)`), or None}.
    """
    import numpy as np

    base = model.get_layer(base_name)
    cut = frozen_cut(base, start) if start is not None else None
    if cut is not None:
        values = feature_data["examples"] * (2 if flip else 1) * int(np.prod(cut.shape[1:]))
        if cut is base.input or values * 4 > max_bytes:
            cut = None
    bottom = keras.Model(base.input, cut) if cut is not None else base
    labels, train = feature_arrays(bottom, feature_data["train"])
    flipped = feature_arrays(bottom, feature_data["train"], flip=True)[1] if flip else None
    dev_labels, dev = feature_arrays(bottom, feature_data["dev"])
    phase2 = None
    if cut is not None:
        phase2 = {
            "train_data": feature_dataset(train, labels, batch_size, shuffle_seed=seed, flipped=flipped),
            "dev_data": feature_dataset(dev, dev_labels, batch_size),
        }
        top = keras.Model(cut, base.output)
        train, dev = (top.predict(array, batch_size=batch_size, verbose=0) for array in (train, dev))
        flipped = top.predict(flipped, batch_size=batch_size, verbose=0) if flip else None
    phase1 = {
        "train_data": feature_dataset(train, labels, batch_size, shuffle_seed=seed, flipped=flipped),
        "dev_data": feature_dataset(dev, dev_labels, batch_size),
    }
    return {"phase1": phase1, "phase2": phase2, "cut": cut}


def remove_phase_files(output_dir, phases):
    """Delete what `fit_phases` kept for `--resume` (each phase's final model and best weights, and state.json), once
    the run's own model is saved."""
    for phase in phases:
        for leftover in (f"{phase['name']}.keras", f"best_{phase['name']}.weights.h5", f"best_{phase['name']}.json"):
            (output_dir / leftover).unlink(missing_ok=True)
    (output_dir / "state.json").unlink(missing_ok=True)


def plot_phase_history(output_dir, phases, **kwargs):
    """`training_curves.png` in `output_dir` from the histories `fit_phases` wrote (a phase that never ran is left
    out), through `dlapps.plots.plot_history` (`kwargs`: its monitor, keys, mode). Phases that train with different
    losses say so in a "loss" key (e.g. "CosFace", "triplet"), and the plot gives the second its own axis."""
    from dlapps.plots import plot_history

    ran = [(output_dir / f"history_{phase['name']}.csv", phase.get("loss")) for phase in phases]
    ran = [(path, loss) for path, loss in ran if path.exists()]
    loss_names = [loss for _, loss in ran] if any(loss for _, loss in ran) else None
    return plot_history([path for path, _ in ran], output_dir / "training_curves.png", loss_names=loss_names, **kwargs)


def _phase_summary(history_file, monitor, mode="min", best_mark=None):
    """{"epochs", "best_epoch" (1-based), "best"} of a phase: from its best checkpoint's mark when there is one (the
    weights the phase ends with), else from its history."""
    import json

    values = [row.get(monitor, float("nan")) for row in read_history(history_file)]
    if not values:
        return {"epochs": 0, "best_epoch": None, "best": None}
    if best_mark is not None and best_mark.exists():
        return {"epochs": len(values), **json.loads(best_mark.read_text())}
    sign = 1 if mode == "min" else -1
    best = min(range(len(values)), key=lambda i: sign * values[i] if values[i] == values[i] else float("inf"))
    return {"epochs": len(values), "best_epoch": best + 1, "best": values[best]}
