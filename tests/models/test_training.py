import keras
import pytest

from models.training import make_learning_rate, make_optimizer


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
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer("lion", 0.1)
    with pytest.raises(ValueError, match="lr decay must be one of"):
        make_learning_rate(0.1, "step", 1, 1)
