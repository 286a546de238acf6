"""The unsupervised path: proposals on key frames, tracks, the 8 cap, shots (with a perfect-copy
memory network and hand-made proposals, so every expected id can be worked out by hand)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from torch import nn

from tests.infer.conftest import copy_model
from vcseg.infer import discovery as discovery_module
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.discovery import DiscoveryOptions, associate, mask_iou, relabel, split_shots
from vcseg.infer.options import PredictOptions
from vcseg.infer.proposals import Proposal
from vcseg.io.masks import read_mask

H, W = 64, 128
OPTIONS = PredictOptions(size=64, device="cpu", precision="fp32")


def box(top: int, left: int, height: int, width: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[top:top + height, left:left + width] = True
    return mask


def proposal(mask: np.ndarray, score: float = 0.9) -> Proposal:
    ys, xs = np.nonzero(mask)
    return Proposal(mask=mask, score=score, centre=(float(ys.mean()), float(xs.mean())), area=int(mask.sum()))


def write_video(root, name: str, frames: int, grey=lambda t: 90) -> None:
    rng = np.random.default_rng(0)
    for t in range(frames):
        pixels = np.clip(grey(t) + rng.integers(-3, 4, (H, W, 3)), 0, 255).astype(np.uint8)
        path = root / name / f"{t:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=95)


def stub_proposals(monkeypatch, per_call):
    """predict_proposals replaced: the k-th call (k-th key frame) returns per_call(k)."""
    calls = []

    def fake(model, frame, size=None, **kwargs):
        calls.append(frame.shape)
        return per_call(len(calls) - 1)

    monkeypatch.setattr(discovery_module, "predict_proposals", fake)
    return calls


def run(tmp_path, key_every=3, **options):
    return predict_dataset(tmp_path / "test", tmp_path / "pred", [copy_model()], None, OPTIONS,
                           proposals=nn.Identity(), discovery=DiscoveryOptions(key_every=key_every, **options))


def output(tmp_path, name, frames):
    return [read_mask(tmp_path / "pred" / name / f"{t:05d}.png") for t in range(frames)]


def test_twelve_people_give_the_eight_most_salient(tmp_path, monkeypatch):
    write_video(tmp_path / "test", "crowd", 6)
    # 12 people in a row, widths 3..14: equal score and duration, so salience follows the area
    widths = list(range(3, 15))
    lefts = np.cumsum([0, *[w + 1 for w in widths[:-1]]])
    people = [box(10, int(left), 40, width) for left, width in zip(lefts, widths)]
    stub_proposals(monkeypatch, lambda k: [proposal(p) for p in people])
    summary = run(tmp_path)
    masks = output(tmp_path, "crowd", 6)
    ids = sorted(set(np.unique(np.stack(masks)).tolist()) - {0})
    assert ids == list(range(1, 9))
    # the 8 widest (the last 8) are kept, numbered left to right (the order they were found in)
    for new_id, person in enumerate(people[4:], start=1):
        assert all((mask[person] == new_id).all() for mask in masks)
    for person in people[:4]:
        assert all((mask[person] == 0).all() for mask in masks)
    assert summary.predicted == ["crowd"]


def test_a_person_entering_later_is_found_and_keeps_one_id(tmp_path, monkeypatch):
    write_video(tmp_path / "test", "enter", 12)
    first, late = box(5, 5, 30, 20), box(20, 70, 40, 30)
    calls = stub_proposals(monkeypatch, lambda k: [proposal(first)] + ([proposal(late)] if 3 * k >= 6 else []))
    run(tmp_path, key_every=3)
    assert len(calls) == 4  # key frames 0, 3, 6, 9
    masks = output(tmp_path, "enter", 12)
    for t, mask in enumerate(masks):
        assert (mask[first] == 1).all()
        assert (mask[late] == (2 if t >= 6 else 0)).all()


def test_nobody_gives_empty_masks(tmp_path, monkeypatch):
    write_video(tmp_path / "test", "empty", 5)
    stub_proposals(monkeypatch, lambda k: [])
    run(tmp_path)
    assert all(not mask.any() for mask in output(tmp_path, "empty", 5))


def test_a_shot_cut_starts_a_fresh_memory(tmp_path, monkeypatch):
    write_video(tmp_path / "test", "cut", 10, grey=lambda t: 40 if t < 5 else 210)
    before, after = box(5, 5, 30, 20), box(20, 80, 30, 20)
    # key frames: 0 and 3 in shot one, then 5 (the cut: a shot's first frame) and 8
    stub_proposals(monkeypatch, lambda k: [proposal(before if k < 2 else after)])
    run(tmp_path, key_every=3)
    masks = output(tmp_path, "cut", 10)
    for t, mask in enumerate(masks):
        if t < 5:
            assert (mask[before] == 1).all() and not (mask[after]).any()
        else:  # without the cut the copy model would carry the first person on
            assert not mask[before].any() and (mask[after] == 2).all()


def test_split_shots_streams_every_frame_once():
    frames = [np.full((8, 8, 3), 30 if t < 4 else 220, np.uint8) for t in range(7)]
    shots = [(first, len(list(shot))) for first, shot in split_shots(iter(frames), threshold=0.3)]
    assert shots == [(0, 4), (4, 3)]


def test_pure_helpers():
    a, b = box(0, 0, 10, 10), box(0, 5, 10, 10)
    assert mask_iou(a, b) == pytest.approx(50 / 150)
    assert mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 0.0
    ids = np.array([[0, 3, 5], [7, 3, 0]], np.uint8)
    assert relabel(ids, {3: 1, 5: 0, 7: 2}).tolist() == [[0, 1, 0], [2, 1, 0]]


def test_a_track_without_proposals_is_retired(tmp_path, monkeypatch):
    write_video(tmp_path / "test", "leaves", 12)
    person, stays = box(5, 5, 30, 20), box(20, 70, 40, 30)
    # person is proposed on key frames 0 and 3 only; key frames 6 and 9 miss it, so with
    # retire_after=2 it is retired at frame 9 (the copy model would carry its mask on for ever)
    stub_proposals(monkeypatch, lambda k: [proposal(stays)] + ([proposal(person)] if k < 2 else []))
    run(tmp_path, key_every=3, retire_after=2)
    masks = output(tmp_path, "leaves", 12)
    for t, mask in enumerate(masks):
        assert (mask[stays] == 1).all()
        assert (mask[person] == (2 if t < 9 else 0)).all()
    log = json.loads((tmp_path / "pred" / ".predict_log.json").read_text())
    assert any("retired at frame 9" in note for note in log["videos"]["leaves"]["discovery"]["notes"])


def test_association_maximises_the_total_overlap():
    # greedy by proposal would give proposal 0 track 0 (0.6) and leave proposal 1 unmatched
    overlaps = np.array([[0.6, 0.5], [0.55, 0.0]])
    assert associate(overlaps, min_iou=0.3) == {0: 1, 1: 0}
    assert associate(overlaps, min_iou=0.56) == {0: 0}  # only the pairs above the threshold count
    assert associate(np.zeros((0, 3)), 0.3) == {} and associate(np.array([[0.2]]), 0.3) == {}


def test_a_one_off_proposal_is_rejected_everywhere(tmp_path, monkeypatch):
    write_video(tmp_path / "test", "blip", 12)
    person, blip = box(5, 5, 30, 20), box(20, 70, 40, 30)
    # blip is proposed on key frame 3 only: unconfirmed at key frame 6, so it is retired there and
    # its frames 3-5 are dropped from the output as well
    stub_proposals(monkeypatch, lambda k: [proposal(person)] + ([proposal(blip)] if k == 1 else []))
    run(tmp_path, key_every=3, confirm_hits=2)
    for mask in output(tmp_path, "blip", 12):
        assert (mask[person] == 1).all() and not mask[blip].any()


def test_two_proposals_of_one_new_person_start_one_track(tmp_path, monkeypatch):
    write_video(tmp_path / "test", "twice", 6)
    person = box(5, 5, 30, 20)
    shifted = box(6, 6, 30, 20)  # the same person proposed twice (IoU about 0.9)
    stub_proposals(monkeypatch, lambda k: [proposal(person, 0.9), proposal(shifted, 0.8)])
    run(tmp_path, key_every=3)
    for mask in output(tmp_path, "twice", 6):
        assert set(np.unique(mask).tolist()) == {0, 1} and (mask[person] == 1).all()


def test_simulated_proposals_from_exact_truth_give_the_truth_back(tmp_path):
    """Discovery takes any proposer: exact simulated proposals (the tracking benchmark's) of two
    still people, one entering at frame 6, come back as the ground truth on every frame."""
    from tests.conftest import make_video
    from vcseg.infer.discovery import Discovery
    from vcseg.infer.simulated import ProposalErrors, SimulatedProposer

    masks = []
    for t in range(10):
        ids = np.zeros((H, W), np.uint8)
        ids[box(5, 5, 30, 20)] = 1
        if t >= 6:
            ids[box(20, 70, 40, 30)] = 2
        masks.append(ids)
    make_video(tmp_path / "test", "still", masks)
    exact = ProposalErrors(miss_rate=0.0, boundary=0.0, fragment_rate=0.0, false_rate=0.0)
    options = DiscoveryOptions(key_every=3)
    predict_dataset(tmp_path / "test", tmp_path / "pred", [copy_model()], None, OPTIONS,
                    object_sources=lambda video: Discovery(SimulatedProposer.for_video(video, exact), options))
    for t, mask in enumerate(output(tmp_path, "still", 10)):
        np.testing.assert_array_equal(mask, masks[t])
    # every person missed: nobody is found
    missed = ProposalErrors(miss_rate=1.0, boundary=0.0, fragment_rate=0.0, false_rate=0.0)
    predict_dataset(tmp_path / "test", tmp_path / "none", [copy_model()], None, OPTIONS,
                    object_sources=lambda video: Discovery(SimulatedProposer.for_video(video, missed), options))
    assert all(not read_mask(tmp_path / "none" / "still" / f"{t:05d}.png").any() for t in range(10))


def test_matched_proposals_re_anchor_their_track(tmp_path, monkeypatch):
    """The memory (a perfect copy) holds a person still while proposals on key frames 0, 2, 4 see
    it move 2 px a frame (IoU with the still mask: 4 px 16/24, 8 px 12/28). By default (correct_iou
    0.5) only the match below 0.5 (frame 4) replaces the track's mask; with correct_iou 1 every
    match does, unless correct_score is above the proposals' 0.9."""
    write_video(tmp_path / "test", "walk", 5)
    at = [box(10, 10 + 2 * t, 30, 20) for t in range(5)]
    stub_proposals(monkeypatch, lambda k: [proposal(at[2 * (k % 3)])])  # each run asks for 3 key frames
    expected = {"default": [at[0]] * 4 + [at[4]],
                "every": [at[t - t % 2] for t in range(5)],
                "score": [at[0]] * 5}
    for name, options in (("default", {}), ("every", {"correct_iou": 1.0, "correct_score": 0.0}),
                          ("score", {"correct_iou": 1.0, "correct_score": 0.95})):
        out = tmp_path / name
        predict_dataset(tmp_path / "test", out, [copy_model()], None, OPTIONS, proposals=nn.Identity(),
                        discovery=DiscoveryOptions(key_every=2, **options))
        for t in range(5):
            np.testing.assert_array_equal(read_mask(out / "walk" / f"{t:05d}.png") == 1, expected[name][t],
                                          err_msg=f"{name}, frame {t}")
