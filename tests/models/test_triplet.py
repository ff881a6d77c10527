import numpy as np
import pytest

from dlapps.losses.triplet import TripletLoss, pairwise_squared_distances, triplet_loss


def test_the_courses_triplet_loss_on_hand_made_embeddings():
    anchor = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    positive = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)  # squared distances 1 and 0
    negative = np.array([[2.0, 0.0], [1.0, 0.1]], np.float32)  # squared distances 4 and 0.01
    # max(1 - 4 + 0.2, 0) + max(0 - 0.01 + 0.2, 0) = 0 + 0.19
    assert float(triplet_loss(anchor, positive, negative, margin=0.2)) == pytest.approx(0.19)


def test_pairwise_squared_distances_are_exact():
    points = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]], np.float32)
    expected = [[0, 25, 1], [25, 0, 18], [1, 18, 0]]
    np.testing.assert_allclose(np.asarray(pairwise_squared_distances(points)), expected, atol=1e-5)


# Four points on a line: people 0 (at 0 and 1) and 1 (at 1.5 and 3). Squared distances:
# d(0,1)=1, d(0,1.5)=2.25, d(0,3)=9, d(1,1.5)=0.25, d(1,3)=4, d(1.5,3)=2.25.
POINTS = np.array([[0.0], [1.0], [1.5], [3.0]], np.float32)
LABELS = np.array([0, 0, 1, 1])


def test_batch_hard_picks_the_farthest_positive_and_nearest_negative():
    # Anchors: 0: pos 1, neg min(2.25, 9) = 2.25 -> max(1 - 2.25 + 1, 0) = 0
    #          1: pos 1, neg min(0.25, 4) = 0.25 -> 1.75
    #          1.5: pos 2.25, neg min(2.25, 0.25) = 0.25 -> 3.0
    #          3: pos 2.25, neg min(9, 4) = 4 -> 0
    loss = TripletLoss(margin=1.0, mining="batch_hard")(LABELS, POINTS)
    assert float(loss) == pytest.approx((0 + 1.75 + 3.0 + 0) / 4)


def test_semi_hard_takes_the_nearest_negative_beyond_the_positive_or_the_farthest():
    # Pairs (anchor, positive, d_ap): (0,1,1), (1,0,1), (1.5,3,2.25), (3,1.5,2.25).
    # (0,1): negatives 2.25, 9 beyond 1 -> 2.25: max(1 - 2.25 + 1, 0) = 0
    # (1,0): negatives 0.25, 4; beyond 1: 4 -> max(1 - 4 + 1, 0) = 0
    # (1.5,3): negatives 2.25, 0.25; none beyond 2.25 -> the farthest, 2.25 -> 1
    # (3,1.5): negatives 9, 4 beyond 2.25 -> 4 -> 0
    loss = TripletLoss(margin=1.0, mining="semi_hard")(LABELS, POINTS)
    assert float(loss) == pytest.approx(1.0 / 4)


def test_unknown_mining_is_refused_and_config_round_trips():
    with pytest.raises(ValueError, match="mining"):
        TripletLoss(mining="random")
    loss = TripletLoss(margin=0.3, mining="batch_hard")
    again = TripletLoss.from_config(loss.get_config())
    assert (again.margin, again.mining) == (0.3, "batch_hard")
