import numpy as np
import pytest

from dlapps.metrics.verification import (
    accuracy_at,
    best_threshold,
    equal_error_rate,
    roc_auc,
    tar_at_far,
    ten_fold_accuracy,
)

DISTANCES = np.array([0.1, 0.2, 0.3, 0.5, 0.4, 0.6, 0.7, 0.8])
SAME = np.array([1, 1, 1, 1, 0, 0, 0, 0])


def test_auc_counts_the_closer_same_pairs():
    # 16 (same, different) pairs; only (0.5 same vs 0.4 different) is the wrong way round.
    assert roc_auc(DISTANCES, SAME) == pytest.approx(15 / 16)
    assert roc_auc([0.1, 0.1], [1, 0]) == pytest.approx(0.5)


def test_thresholds_accuracy_eer_and_tar():
    assert accuracy_at(DISTANCES, SAME, 0.35) == pytest.approx(7 / 8)
    assert accuracy_at(DISTANCES, SAME, 0.55) == pytest.approx(7 / 8)
    assert best_threshold(DISTANCES, SAME) in (pytest.approx(0.35), pytest.approx(0.55))
    eer, _ = equal_error_rate(DISTANCES, SAME)
    assert eer == pytest.approx(0.25)
    tar, threshold = tar_at_far(DISTANCES, SAME, far_target=0.0)
    assert tar == pytest.approx(0.75) and threshold == pytest.approx(0.3)


def test_ten_fold_accuracy_on_separable_pairs_is_perfect():
    rng = np.random.default_rng(0)
    same = np.arange(200) % 2
    distances = np.where(same == 1, rng.uniform(0, 0.4, 200), rng.uniform(0.6, 1.0, 200))
    mean, std = ten_fold_accuracy(distances, same)
    assert mean == 1.0 and std == 0.0


def test_sample_pairs_round_robin_unique_and_disjoint():
    from dlapps.data.pairs import sample_pairs

    # Items 0-2 are person 0, 3-4 person 1, 5 person 2: 3 + 1 same pairs can be made.
    pairs, same = sample_pairs([3, 2, 1], seed=0)
    owners = np.array([0, 0, 0, 1, 1, 2])
    assert same.tolist() == [1] * 4 + [0] * 4
    assert all(owners[a] == owners[b] and a != b for a, b in pairs[:4])
    assert all(owners[a] != owners[b] for a, b in pairs[4:])
    assert len({(min(a, b), max(a, b)) for a, b in pairs}) == 8  # no pair twice
    # same_total takes pairs round-robin: person 1's only pair is among the first two, whatever the seed.
    for seed in range(5):
        pairs, same = sample_pairs([3, 2, 1], same_total=2, seed=seed)
        assert {tuple(owners[p]) for p in pairs[:2]} == {(0, 0), (1, 1)} and len(pairs) == 4
    # One pair per person at most.
    pairs, _ = sample_pairs([3, 2, 1], same_per_person=1, seed=0)
    assert len(pairs) == 4


def test_sample_pairs_refuses_what_cannot_be_made():
    from dlapps.data.pairs import sample_pairs
    from dlapps.data.readers import DataError

    with pytest.raises(DataError, match="no person has two"):
        sample_pairs([1, 1, 1])
    with pytest.raises(DataError, match="fewer than two people"):
        sample_pairs([4])
    with pytest.raises(DataError, match="only 4 same-person pairs"):
        sample_pairs([3, 2, 1], same_total=5)


def test_pairs_file_round_trip_with_relative_paths(tmp_path):
    from dlapps.data.pairs import read_pairs_file, write_pairs_file

    (tmp_path / "faces").mkdir()
    a, b = tmp_path / "faces" / "a.jpg", tmp_path / "faces" / "b.jpg"
    path = write_pairs_file(tmp_path / "lists" / "pairs.txt", [(a, b, 1), (b, a, 0)], header="test pairs")
    assert path.read_text().splitlines()[1] == "../faces/a.jpg\t../faces/b.jpg\t1"
    assert [(p.resolve(), q.resolve(), s) for p, q, s in read_pairs_file(path)] == [(a, b, 1), (b, a, 0)]
