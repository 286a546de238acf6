"""Simulated proposals from ground truth: each kind of error does what its docstring says."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_video
from vcseg.infer.simulated import ProposalErrors, SimulatedProposer, disk, simulate_proposals
from vcseg.io.layouts import find_dataset

NONE = ProposalErrors(miss_rate=0.0, boundary=0.0, fragment_rate=0.0, false_rate=0.0)


def two_people() -> np.ndarray:
    truth = np.zeros((100, 200), np.uint8)
    truth[10:90, 20:60] = 1  # 80 x 40
    truth[20:80, 120:150] = 2  # 60 x 30
    return truth


def test_without_errors_each_person_is_one_exact_proposal():
    truth = two_people()
    proposals = simulate_proposals(truth, NONE, seed=0, frame_index=0)
    assert sorted(p.area for p in proposals) == [1800, 3200]
    for p in proposals:
        person = int(truth[p.mask][0])
        np.testing.assert_array_equal(p.mask, truth == person)
        assert 0.4 <= p.score < 1.0
    assert [p.score for p in proposals] == sorted((p.score for p in proposals), reverse=True)
    big = next(p for p in proposals if p.area == 3200)
    assert big.centre == pytest.approx((49.5, 39.5))


def test_every_person_missed_gives_no_proposals():
    errors = ProposalErrors(miss_rate=1.0, boundary=0.0, fragment_rate=0.0, false_rate=0.0)
    assert simulate_proposals(two_people(), errors, seed=0, frame_index=3) == []


def test_boundary_errors_grow_or_shrink_by_the_drawn_radius():
    truth = two_people()
    errors = ProposalErrors(miss_rate=0.0, boundary=0.05, fragment_rate=0.0, false_rate=0.0)  # up to 5 px
    radii = set()
    for frame in range(20):
        for p in simulate_proposals(truth, errors, seed=1, frame_index=frame):
            person = truth == truth[int(p.centre[0]), int(p.centre[1])]
            # a rectangle dilated by a disk of radius r gains 2r per side (rounded corners aside);
            # eroded, it loses exactly 2r
            rows = np.flatnonzero(p.mask.any(axis=1))
            radius = ((rows[-1] - rows[0] + 1) - np.flatnonzero(person.any(axis=1)).size) / 2
            assert radius == int(radius) and abs(radius) <= 5
            if radius < 0:
                assert not (p.mask & ~person).any()
            elif radius > 0:
                assert (p.mask & person).sum() == person.sum()
            radii.add(radius)
    assert len(radii) >= 4  # the radius is drawn, not fixed


def test_fragments_are_the_upper_or_lower_part():
    truth = two_people()
    errors = ProposalErrors(miss_rate=0.0, boundary=0.0, fragment_rate=1.0, false_rate=0.0)
    halves = set()
    for frame in range(12):
        for p in simulate_proposals(truth, errors, seed=2, frame_index=frame):
            person = truth == truth[p.mask][0]
            assert not (p.mask & ~person).any()
            rows = np.flatnonzero(p.mask.any(axis=1))
            all_rows = np.flatnonzero(person.any(axis=1))
            share = len(rows) / len(all_rows)
            assert 0.38 <= share <= 0.62
            halves.add("upper" if rows[0] == all_rows[0] else "lower")
            assert rows[0] == all_rows[0] or rows[-1] == all_rows[-1]
    assert halves == {"upper", "lower"}


def test_a_false_proposal_lies_on_the_background():
    truth = two_people()
    errors = ProposalErrors(miss_rate=1.0, boundary=0.0, fragment_rate=0.0, false_rate=1.0)
    areas = []
    for frame in range(20):
        proposals = simulate_proposals(truth, errors, seed=3, frame_index=frame)
        assert len(proposals) <= 1  # none when the disk falls mostly on the people
        for false in proposals:
            assert not (false.mask & (truth > 0)).any()
            assert 0.3 <= false.score < 0.6
            areas.append(false.area)
    assert len(areas) >= 10
    assert max(areas) <= disk(15).sum()  # radius at most 15% of the short side


def test_draws_depend_on_seed_frame_and_person_only():
    truth = two_people()
    errors = ProposalErrors(false_rate=0.0)

    def person_two(ids, seed, frame):
        return [(p.score, p.mask) for p in simulate_proposals(ids, errors, seed=seed, frame_index=frame)
                if p.mask[(ids == 2)].any()]

    alone = np.where(truth == 2, 2, 0).astype(np.uint8)
    for frame in range(10):
        beside, by_itself = person_two(truth, 4, frame), person_two(alone, 4, frame)
        assert len(beside) == len(by_itself) <= 1
        for (score_a, mask_a), (score_b, mask_b) in zip(beside, by_itself):
            assert score_a == score_b
            np.testing.assert_array_equal(mask_a, mask_b)
    scores = {tuple(p.score for p in simulate_proposals(truth, errors, seed=seed, frame_index=7)) for seed in range(5)}
    assert len(scores) > 1  # another seed, other draws


def test_miss_rate_is_met_on_average():
    truth = two_people()
    errors = ProposalErrors(miss_rate=0.3, boundary=0.0, fragment_rate=0.0, false_rate=0.0)
    found = sum(len(simulate_proposals(truth, errors, seed=5, frame_index=f)) for f in range(500))
    assert found / 1000 == pytest.approx(0.7, abs=0.05)  # 1000 draws: standard error 0.015


def test_proposer_reads_each_frames_mask(tmp_path):
    masks = [two_people(), np.roll(two_people(), 7, axis=1), np.zeros((100, 200), np.uint8)]
    make_video(tmp_path / "data", "v", masks)
    video = find_dataset(tmp_path / "data").videos[0]
    propose = SimulatedProposer.for_video(video, NONE)
    frame = np.zeros((100, 200, 3), np.uint8)
    for index, truth in enumerate(masks):
        proposals = propose(index, frame)
        assert len(proposals) == len(np.unique(truth)) - 1
        for p in proposals:
            np.testing.assert_array_equal(p.mask, truth == truth[p.mask][0])
    assert propose(99, frame) == []  # no mask for that frame
    with pytest.raises(ValueError, match="mask is 100x200, its frame 5x5"):
        propose(0, np.zeros((5, 5, 3), np.uint8))


def test_rates_out_of_range_are_refused():
    with pytest.raises(ValueError, match="miss_rate"):
        ProposalErrors(miss_rate=1.5)
    with pytest.raises(ValueError, match="boundary"):
        ProposalErrors(boundary=-0.1)
