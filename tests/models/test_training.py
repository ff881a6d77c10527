import csv
import json

import keras
import numpy as np
import pytest

from dlapps.training import make_learning_rate, make_optimizer


def test_inverse_time_decay_is_the_courses_formula():
    # lr / (1 + decay_rate * epoch), with 10 steps per epoch.
    schedule = make_learning_rate(0.1, "inverse_time", steps_per_epoch=10, epochs=5, decay_rate=1.0)
    for step, epoch in ((0, 0), (10, 1), (30, 3)):
        assert float(schedule(step)) == pytest.approx(0.1 / (1 + epoch))


def test_constant_and_cosine():
    assert make_learning_rate(0.01, "none", 10, 5) == 0.01
    cosine = make_learning_rate(0.01, "cosine", steps_per_epoch=10, epochs=5)
    assert float(cosine(0)) == pytest.approx(0.01) and float(cosine(50)) == pytest.approx(0.0, abs=1e-9)


def test_optimizers_and_bad_names():
    assert isinstance(make_optimizer("sgd", 0.1), keras.optimizers.SGD)
    assert make_optimizer("sgd", 0.1).momentum == 0.9
    assert isinstance(make_optimizer("rmsprop", 0.1), keras.optimizers.RMSprop)
    decayed = make_optimizer("adamw", 0.1, weight_decay=0.05, ema_momentum=0.99)
    assert isinstance(decayed, keras.optimizers.AdamW) and decayed.weight_decay == 0.05
    assert decayed.use_ema and decayed.ema_momentum == 0.99 and not make_optimizer("adam", 0.1).use_ema
    assert make_optimizer("sgd", 0.1, nesterov=True).nesterov and not make_optimizer("sgd", 0.1).nesterov
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer("lion", 0.1)
    with pytest.raises(ValueError, match="lr decay must be one of"):
        make_learning_rate(0.1, "step", 1, 1)


def test_a_later_phase_that_never_beats_an_earlier_one_gives_way_to_it(tmp_path, caplog):
    import logging

    import tensorflow as tf

    from dlapps.training import fit_phases

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax", name="out")])

    def compile_with(rate):
        def prepare(trained):
            trained.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy")

        return prepare

    def spoil(trained):
        # Phase 2 starts from scrambled weights and cannot learn (rate 0): every epoch is worse than phase 1.
        kernel, bias = trained.get_layer("out").get_weights()
        trained.get_layer("out").set_weights([-10 * kernel, bias])
        compile_with(0.0)(trained)

    phases = [
        {"name": "phase1", "epochs": 5, "prepare": compile_with(0.05)},
        {"name": "phase2", "epochs": 2, "prepare": spoil},
    ]
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    with caplog.at_level(logging.INFO, logger="dlapps"):
        summary = fit_phases(model, phases, train, train, tmp_path, patience=None, verbose=0, tensorboard=False)
    assert summary["kept"] == "phase1" and summary["phase1"]["best"] < summary["phase2"]["best"]
    # Keras silent (a Python caller): each epoch's figures still reach the dlapps logger.
    lines = [record.getMessage() for record in caplog.records if " epoch " in record.getMessage()]
    assert len(lines) == 7 and lines[0].startswith("phase1 epoch 1/5: loss ") and "val_loss" in lines[0]
    phase1 = keras.saving.load_model(tmp_path / "phase1.keras")
    for kept, saved in zip(model.get_weights(), phase1.get_weights(), strict=True):
        np.testing.assert_allclose(kept, saved)

    # The line the apps print after training names the kept phase, and what it was better on.
    from dlapps.training import finished_phase_model, phase_done, phase_report

    assert phase_report(summary).endswith("; kept phase1's weights (better dev loss than the later phase)")
    assert phase_report(summary).startswith("phase1: best epoch ")
    assert "kept" not in phase_report({"a": {"best_epoch": 2, "epochs": 3}, "kept": "a"})
    # What --resume reads: the count of finished phases and the model the last one saved.
    assert phase_done(tmp_path) == 2 and phase_done(tmp_path / "new") == 0
    assert finished_phase_model(tmp_path, phases, 0) is None
    resumed = finished_phase_model(tmp_path, ["phase1", "phase2"], 1)
    np.testing.assert_allclose(resumed.get_weights()[0], phase1.get_weights()[0])


def test_balanced_class_weights_weigh_every_class_as_a_balanced_set_would():
    from dlapps.training import balanced_class_weights

    # 6 of class 0, 2 of class 1, none of class 2: n / (C * n_c) = 8/18, 8/6, and 8/3 for the empty class.
    weights = balanced_class_weights([0, 0, 0, 0, 0, 0, 1, 1], 3)
    assert weights == pytest.approx({0: 8 / 18, 1: 8 / 6, 2: 8 / 3})
    assert 6 * weights[0] == pytest.approx(2 * weights[1])


def test_recalibrate_batch_norm_sets_the_plain_mean_of_the_batches():
    import keras
    import numpy as np

    from dlapps.training import recalibrate_batch_norm

    inputs = keras.Input((3,))
    frozen = keras.layers.BatchNormalization(name="frozen")
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(frozen(inputs)))
    frozen.trainable = False
    images = np.random.default_rng(0).normal(5.0, 2.0, (12, 3)).astype(np.float32)
    recalibrate_batch_norm(model, images, batch_size=4)
    batch_means = images.reshape(3, 4, 3).mean(axis=1) / np.sqrt(1 + 1e-3)  # the frozen layer's variance 1 + epsilon
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(), batch_means.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(frozen.moving_mean.numpy(), 0.0)  # frozen layers keep theirs
    assert model.get_layer("bn").momentum == 0.99  # restored


def _residual_classifier():
    """input -> base (conv1 -> conv2 -> add(conv1, conv2) -> conv3 -> pool) -> dropout -> dense, seeded."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 3))
    x1 = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(image)
    x2 = keras.layers.Conv2D(4, 3, padding="same", name="conv2")(x1)
    x = keras.layers.Add(name="add")([x1, x2])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(keras.layers.Conv2D(4, 3, name="conv3")(x))
    base = keras.Model(image, x, name="base")
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Dropout(0.1)(base(inputs)))
    return keras.Model(inputs, outputs), base


def test_head_on_features_shares_the_head_and_answers_as_the_whole_model():
    import numpy as np

    from dlapps.training import feature_arrays, feature_dataset, head_on_features

    model, base = _residual_classifier()
    head = head_on_features(model, "base")
    images = np.random.default_rng(0).random((5, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(head(base(images)), model(images), atol=1e-6)
    import tensorflow as tf

    labels, features = feature_arrays(base, tf.data.Dataset.from_tensor_slices((images, np.arange(5) % 2)).batch(2))
    data = feature_dataset(features, labels, 2)
    features, labels = map(np.concatenate, zip(*[(np.asarray(f), np.asarray(y)) for f, y in data], strict=True))
    np.testing.assert_allclose(features, base(images), atol=1e-6)
    assert labels.tolist() == [0, 1, 0, 1, 0]
    head.layers[-1].kernel.assign(np.zeros((4, 2), "float32"))  # the head's layers are the model's layers
    np.testing.assert_allclose(model(images), 0.5, atol=1e-6)


def test_frozen_cut_never_cuts_a_residual_block_and_the_top_answers_as_the_whole_model():
    import keras
    import numpy as np

    from dlapps.training import frozen_cut, head_on_features, unfreeze_start

    model, base = _residual_classifier()
    names = [layer.name for layer in base.layers[1:]]  # conv1, conv2, add, conv3, pool
    # Unfrozen from conv3: the add's output feeds it. From conv2 or from the add: both need conv1's output, and a cut
    # between conv2 and the add would need two tensors, so it moves back to conv1's output.
    assert frozen_cut(base, names.index("conv3")) is base.get_layer("add").output
    assert frozen_cut(base, names.index("add")) is base.get_layer("conv1").output
    assert frozen_cut(base, names.index("conv2")) is base.get_layer("conv1").output
    assert frozen_cut(base, names.index("conv1")) is base.input
    assert unfreeze_start(base, "conv3") == names.index("conv3") and unfreeze_start(base, fraction=0.4) == 3
    assert unfreeze_start(base, "-1") == len(names) - 1
    with pytest.raises(ValueError, match="from 0 to"):
        unfreeze_start(base, str(len(names)))
    images = np.random.default_rng(1).random((3, 8, 8, 3)).astype("float32")
    cut = frozen_cut(base, names.index("add"))
    top = head_on_features(model, "base", cut=cut)
    np.testing.assert_allclose(top(keras.Model(base.input, cut)(images)), model(images), atol=1e-6)
    assert {id(v) for v in top.weights} <= {id(v) for v in model.weights}  # training the top trains the model


def test_feature_dataset_draws_each_example_from_the_features_or_their_mirror():
    import numpy as np

    from dlapps.training import feature_dataset

    features, flipped = np.zeros((64, 2), "float32"), np.ones((64, 2), "float32")
    data = feature_dataset(features, np.arange(64), 8, shuffle_seed=0, flipped=flipped)
    batches = [(np.asarray(x), np.asarray(y)) for x, y in data]
    values, labels = np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])
    assert sorted(labels.tolist()) == list(range(64))  # every example once per epoch
    assert np.all(values[:, 0] == values[:, 1]) and 10 < values[:, 0].sum() < 54  # whole rows, both sources drawn


def test_a_process_killed_while_writing_the_best_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    import tensorflow as tf

    from dlapps.training import fit_phases

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax", name="out")])
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

    def prepare(trained):
        trained.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")

    phases = [{"name": "phase1", "epochs": 3, "prepare": prepare}]
    save_weights, calls = keras.Model.save_weights, []

    def killed_at_the_second_write(self, filepath, *args, **kwargs):
        if "best" in str(filepath):
            calls.append(filepath)
            if len(calls) == 2:  # the second improvement: a few bytes written, then the process dies
                open(filepath, "wb").write(b"\x89HDF\r\n" + b"\0" * 90)
                raise KeyboardInterrupt
        return save_weights(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", killed_at_the_second_write)
    with pytest.raises(KeyboardInterrupt):
        fit_phases(model, phases, data, data, tmp_path, patience=None, verbose=0, tensorboard=False)
    model.load_weights(tmp_path / "best_phase1.weights.h5")  # the first epoch's checkpoint, whole
    monkeypatch.setattr(keras.Model, "save_weights", save_weights)
    summary = fit_phases(model, phases, data, data, tmp_path, patience=None, verbose=0, tensorboard=False)
    # The resumed run ends with the phase's best weights (none half-written left behind).
    assert summary["phase1"]["best_epoch"] is not None and not list(tmp_path.glob(".best_*"))
    model.load_weights(tmp_path / "best_phase1.weights.h5")
    # The epoch whose checkpoint was cut short had been backed up: it is in the history once, not lost or repeated.
    with open(tmp_path / "history_phase1.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    # The summary names the epoch whose weights the checkpoint holds, with its dev loss from the history.
    best = summary["phase1"]
    assert best == {"epochs": 3, **json.loads((tmp_path / "best_phase1.json").read_text())}
    assert float(rows[best["best_epoch"] - 1]["val_loss"]) == pytest.approx(best["best"])


def test_frozen_part_features_feed_both_phases_from_one_pass_of_the_frozen_part():
    import tensorflow as tf

    from dlapps.training import frozen_part_features, head_on_features

    model, base = _residual_classifier()
    images = np.random.default_rng(2).random((4, 8, 8, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((images, np.arange(4))).batch(2)  # labels: the rows, to find them
    feature_data = {"train": data, "dev": data, "examples": 4}
    names = [layer.name for layer in base.layers[1:]]
    found = frozen_part_features(model, "base", names.index("conv3"), feature_data, 4, seed=0, flip=True)
    assert found["cut"] is base.get_layer("add").output
    mirrored = images[:, :, ::-1]
    for phase, extractor in (("phase2", keras.Model(base.input, found["cut"])), ("phase1", base)):
        features, labels = next(iter(found[phase]["dev_data"]))  # dev: in order, not mirrored
        np.testing.assert_allclose(features, extractor(images), atol=1e-5)
        features, labels = next(iter(found[phase]["train_data"]))  # train: each example as it is or mirrored
        for feature, label in zip(np.asarray(features), np.asarray(labels), strict=True):
            plain, flipped = (np.asarray(extractor(x[label : label + 1]))[0] for x in (images, mirrored))
            assert np.allclose(feature, plain, atol=1e-5) or np.allclose(feature, flipped, atol=1e-5)
    top = head_on_features(model, "base", found["cut"])
    features, _ = next(iter(found["phase2"]["dev_data"]))
    np.testing.assert_allclose(top(features), model(images), atol=1e-5)
    # Too big to hold: phase 2 trains on images; phase 1 still on the whole base's features.
    small = frozen_part_features(model, "base", names.index("conv3"), feature_data, 4, seed=0, max_bytes=0)
    assert small["cut"] is None and small["phase2"] is None and small["phase1"]["train_data"] is not None


def test_with_a_weight_average_the_kept_epoch_is_the_averaged_weights_dev_was_measured_on(tmp_path):
    """use_ema: dev is measured on the averaged weights, and the best checkpoint holds those, not the raw ones."""
    import tensorflow as tf

    from dlapps.training import fit_phases, read_history

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * rng.normal(size=64) > 0).astype("int64")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)

    def run(use_ema, folder):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax", name="out")])

        def prepare(trained):
            optimizer = keras.optimizers.Adam(0.2, use_ema=use_ema, ema_momentum=0.9)
            trained.compile(optimizer, "sparse_categorical_crossentropy")

        phases = [{"name": "phase1", "epochs": 6, "prepare": prepare}]
        summary = fit_phases(model, phases, data, data, folder, patience=None, verbose=0, tensorboard=False)
        return model, summary, [row["val_loss"] for row in read_history(folder / "history_phase1.csv")]

    raw_model, _, raw_losses = run(False, tmp_path / "raw")
    model, summary, losses = run(True, tmp_path / "ema")
    # The raw weights follow the same path in both runs; only what dev measured differs.
    assert not np.allclose(losses, raw_losses)
    assert summary["phase1"]["best"] == pytest.approx(min(losses))
    # The kept weights answer with the dev loss recorded for them.
    assert model.evaluate(data, verbose=0) == pytest.approx(min(losses), rel=1e-5)


def test_log_progress_reports_steps_and_time_left_inside_epochs():
    from dlapps.training import LogProgress, _duration

    lines = []
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    data = np.zeros((6, 2), np.float32), np.zeros((6, 1), np.float32)
    progress = LogProgress(3, every=0.0, write=lambda text, flush=False: lines.append(text))
    model.fit(*data, batch_size=2, epochs=3, verbose=0, callbacks=[progress])
    steps = [line for line in lines if "step" in line]
    assert steps[0].startswith("  epoch 1: step 1/3, 0 s, about") and steps[-1].startswith("  epoch 3: step 3/3")
    assert [line for line in lines if "phase" in line][-1].endswith("left in this phase (1 epochs)")
    assert (_duration(45), _duration(200), _duration(3900)) == ("45 s", "3 min 20 s", "1 h 05 min")
