"""Proposal post-processing: peaks by max-pool NMS, offset grouping, area and score, the mapping
from a resized and padded input at stride 4 back to the frame, and `predict_proposals` end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vcseg.infer.proposals import (Proposal, find_centres, group_pixels, merge_proposals, pad_to_multiple, postprocess,
                                   predict_proposals, to_target_coordinates)
from vcseg.io.frames import IMAGENET_MEAN_RGB
from vcseg.model.proposal_targets import make_targets
from vcseg.model.proposals import ProposalConfig

H, W = 40, 60


def hand_made_maps(instances: dict[int, tuple[np.ndarray, tuple[int, int], float]], shape=(H, W),
                   inside: float = 0.9, outside: float = 0.05) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """foreground probability, centre heatmap and offsets for {id: (bool mask, (cy, cx), peak)}:
    foreground `inside` on the masks, `outside` elsewhere; the heatmap 0 but the peaks; offsets
    from every mask pixel to its centre."""
    foreground = np.full(shape, outside, np.float32)
    centre = np.zeros(shape, np.float32)
    offsets = np.zeros((2, *shape), np.float32)
    for mask, (cy, cx), peak in instances.values():
        foreground[mask] = inside
        centre[cy, cx] = peak
        ys, xs = np.nonzero(mask)
        offsets[0, ys, xs] = cy - ys
        offsets[1, ys, xs] = cx - xs
    return torch.from_numpy(foreground), torch.from_numpy(centre), torch.from_numpy(offsets)


def rectangle(top: int, left: int, height: int, width: int, shape=(H, W)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top:top + height, left:left + width] = True
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture
def bar_and_block() -> dict[int, tuple[np.ndarray, tuple[int, int], float]]:
    """A long bar (rows 5-9, cols 5-54, centre (7, 30)) and a block below its right end (rows
    12-30, cols 45-54, centre (21, 50)). The bar's right end is nearer the block's centre than its
    own: only the offsets put it in the bar."""
    return {1: (rectangle(5, 5, 5, 50), (7, 30), 0.9), 2: (rectangle(12, 45, 19, 10), (21, 50), 0.7)}


def test_two_instances_are_recovered_exactly(bar_and_block) -> None:
    foreground, centre, offsets = hand_made_maps(bar_and_block)
    proposals = postprocess(foreground, centre, offsets, min_area=10)
    assert len(proposals) == 2
    bar, block = proposals  # sorted by score: 0.9 * 0.9 before 0.7 * 0.9
    assert np.array_equal(bar.mask, bar_and_block[1][0]) and np.array_equal(block.mask, bar_and_block[2][0])
    assert bar.area == 250 and block.area == 190
    assert bar.score == pytest.approx(0.9 * 0.9) and block.score == pytest.approx(0.7 * 0.9)
    assert bar.centre == (7.0, 30.0) and block.centre == (21.0, 50.0)
    # (7, 54) lies 23 px from the bar's centre and sqrt(14^2 + 4^2) ~ 14.6 px from the block's
    assert bar.mask[7, 54]


def test_group_pixels_follows_the_offsets() -> None:
    foreground = torch.zeros(5, 5, dtype=torch.bool)
    foreground[2, 0] = foreground[2, 4] = True
    offsets = torch.zeros(2, 5, 5)
    offsets[1, 2, 0] = 4.0  # the left pixel points at the right centre
    labels = group_pixels(foreground, offsets, torch.tensor([[2, 0], [2, 4]]))
    expected = torch.zeros(5, 5, dtype=torch.int64)
    expected[2, 0] = expected[2, 4] = 2
    assert torch.equal(labels, expected)
    assert torch.equal(group_pixels(foreground, offsets, torch.zeros(0, 2)), torch.zeros(5, 5, dtype=torch.int64))


def test_nms_suppresses_a_near_duplicate_peak() -> None:
    heat = torch.zeros(H, W)
    heat[10, 10], heat[10, 12], heat[30, 40] = 0.9, 0.85, 0.8
    centres, values = find_centres(heat, threshold=0.1, nms_kernel=7, top_k=10)
    assert centres.tolist() == [[10, 10], [30, 40]] and values.tolist() == pytest.approx([0.9, 0.8])
    centres, _ = find_centres(heat, threshold=0.1, nms_kernel=3, top_k=10)  # 2 px apart: both survive a 3x3 window
    assert centres.tolist() == [[10, 10], [10, 12], [30, 40]]
    centres, _ = find_centres(heat, threshold=0.1, nms_kernel=3, top_k=2)
    assert centres.tolist() == [[10, 10], [10, 12]]


def test_threshold_drops_a_weak_centre(bar_and_block) -> None:
    weak = dict(bar_and_block)
    weak[2] = (weak[2][0], weak[2][1], 0.05)
    foreground, centre, offsets = hand_made_maps(weak)
    assert find_centres(centre, threshold=0.1)[0].tolist() == [[7, 30]]
    proposals = postprocess(foreground, centre, offsets, centre_threshold=0.1, min_area=10)
    # without its centre the block's pixels join the only centre left
    assert len(proposals) == 1
    assert np.array_equal(proposals[0].mask, bar_and_block[1][0] | bar_and_block[2][0])
    assert len(postprocess(foreground, centre, offsets, centre_threshold=0.01, min_area=10)) == 2


def test_min_area_drops_a_tiny_instance(bar_and_block) -> None:
    with_tiny = dict(bar_and_block)
    with_tiny[3] = (rectangle(33, 5, 3, 3), (34, 6), 0.95)
    foreground, centre, offsets = hand_made_maps(with_tiny)
    proposals = postprocess(foreground, centre, offsets, min_area=10)
    assert [p.area for p in proposals] == [250, 190]
    assert [p.area for p in postprocess(foreground, centre, offsets, min_area=9)] == [9, 250, 190]


def test_empty_heatmap_gives_no_proposals(bar_and_block) -> None:
    foreground, _, offsets = hand_made_maps(bar_and_block)
    assert postprocess(foreground, torch.zeros(H, W), offsets) == []
    assert postprocess(torch.zeros(H, W), torch.zeros(H, W), torch.zeros(2, H, W)) == []


def test_no_foreground_gives_no_proposals(bar_and_block) -> None:
    _, centre, offsets = hand_made_maps(bar_and_block)
    assert postprocess(torch.zeros(H, W), centre, offsets, min_area=1) == []


def test_stride_four_resized_content_maps_back_to_the_frame() -> None:
    # Content 32x48 (the frame resized by 1/2) padded to 48x64; outputs at stride 4 are 12x16.
    # Two rectangles on the 4-px grid: cells rows 1-3 x cols 1-5 and rows 4-6 x cols 7-9.
    cells = {1: ((1, 4), (1, 6)), 2: ((4, 7), (7, 10))}
    foreground = np.zeros((12, 16), np.float32)
    centre = np.zeros((12, 16), np.float32)
    offsets = np.zeros((2, 12, 16), np.float32)
    for (r0, r1), (c0, c1) in cells.values():
        foreground[r0:r1, c0:c1] = 1.0
        cy, cx = (r0 + r1 - 1) // 2, (c0 + c1 - 1) // 2
        centre[cy, cx] = 0.8
        ys, xs = np.mgrid[r0:r1, c0:c1]
        offsets[0, ys, xs], offsets[1, ys, xs] = cy - ys, cx - xs
    proposals = postprocess(torch.from_numpy(foreground), torch.from_numpy(centre), torch.from_numpy(offsets),
                            stride=4, content_size=(32, 48), target_size=(64, 96), min_area=10)
    assert len(proposals) == 2
    for proposal, ((r0, r1), (c0, c1)) in zip(proposals, cells.values()):
        # a cell is 4 content px = 8 frame px
        expected = np.zeros((64, 96), bool)
        expected[8 * r0:8 * r1, 8 * c0:8 * c1] = True
        assert proposal.mask.shape == (64, 96)
        assert iou(proposal.mask, expected) > 0.95
        ys, xs = np.nonzero(expected)
        assert proposal.centre == pytest.approx((ys.mean(), xs.mean()))
        assert proposal.score == pytest.approx(0.8 * foreground_mean(proposal.mask, foreground))


def foreground_mean(mask: np.ndarray, foreground: np.ndarray) -> float:
    """Mean of the bilinear upsampled foreground over `mask` (independent: torch, one interpolation
    per step, as the frame was made)."""
    maps = torch.nn.functional.interpolate(torch.from_numpy(foreground)[None, None], size=(48, 64),
                                           mode="bilinear", align_corners=False)[..., :32, :48]
    maps = torch.nn.functional.interpolate(maps, size=(64, 96), mode="bilinear", align_corners=False)
    return float(maps[0, 0].numpy()[mask].mean())


def test_target_coordinates_follow_the_pixel_centre_convention() -> None:
    points = torch.tensor([[0, 0], [2, 3]])
    # stride 4: cell 0 centred at 1.5, cell 2 at 9.5, cell 3 at 13.5; then x2 resize: (c + 0.5) * 2 - 0.5
    assert to_target_coordinates(points, 4, (32, 48), (64, 96)).tolist() == [[3.5, 3.5], [19.5, 27.5]]
    assert to_target_coordinates(points, 1, (32, 48), (32, 48)).tolist() == [[0.0, 0.0], [2.0, 3.0]]


def test_pad_to_multiple_pads_bottom_right_with_the_mean_colour() -> None:
    frame = np.full((20, 35, 3), 7, np.uint8)
    padded = pad_to_multiple(frame, 16)
    assert padded.shape == (32, 48, 3)
    assert (padded[:20, :35] == 7).all()
    assert (padded[20:] == IMAGENET_MEAN_RGB).all() and (padded[:, 35:] == IMAGENET_MEAN_RGB).all()
    assert pad_to_multiple(padded, 16) is padded


class ColourOracle(nn.Module):
    """A stand-in network: red pixels are person 1, blue pixels person 2; it answers with perfect
    maps at stride 4 (logits +-8, the centre heatmap as logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = ProposalConfig(min_proposal_area=50)
        self.weight = nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[tuple[int, ...], float, bool]] = []

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        image = frames[0].numpy()
        ids = np.zeros(image.shape[1:], np.uint8)
        ids[(image[0] > 0.7) & (image[2] < 0.3)] = 1
        ids[(image[2] > 0.7) & (image[0] < 0.3)] = 2
        self.seen.append((tuple(frames.shape), float(frames[0, 0, -1, -1]), self.training))
        targets = make_targets(ids, stride=4, sigma=8.0, min_area=10)
        foreground = torch.from_numpy(targets["foreground"] * 16.0 - 8.0)[None]
        heat = torch.from_numpy(targets["centre"]).clamp(1e-4, 1 - 1e-4)[None]
        return {"foreground_logits": foreground, "centre_logits": torch.log(heat / (1 - heat)),
                "offsets": torch.from_numpy(targets["offsets"])[None]}


def test_predict_proposals_resizes_pads_and_maps_back() -> None:
    frame = np.full((50, 70, 3), 128, np.uint8)
    frame[5:45, 5:30] = (230, 20, 20)
    frame[10:40, 40:65] = (20, 20, 230)
    model = ColourOracle().train()
    proposals = predict_proposals(model, frame, size=40)
    # 50x70 -> short side 40: 40x56, padded to 48x64, the padding the ImageNet mean
    assert model.seen == [((1, 3, 48, 64), pytest.approx(IMAGENET_MEAN_RGB[0] / 255), False)]
    assert model.training  # mode restored
    assert len(proposals) == 2
    truth = {1: rectangle(5, 5, 40, 25, (50, 70)), 2: rectangle(10, 40, 30, 25, (50, 70))}
    matched = sorted(max(truth, key=lambda k: iou(p.mask, truth[k])) for p in proposals)
    assert matched == [1, 2]
    for proposal in proposals:
        assert proposal.mask.shape == (50, 70)
        assert max(iou(proposal.mask, t) for t in truth.values()) > 0.85
    assert proposals[0].score >= proposals[1].score


def proposal(mask: np.ndarray, score: float) -> Proposal:
    return Proposal(mask=mask, score=score, centre=(0.0, 0.0), area=int(mask.sum()))


def test_merge_proposals_keeps_each_person_once() -> None:
    person = rectangle(5, 5, 20, 10)  # 200 pixels
    shifted = rectangle(5, 7, 20, 10)  # IoU with person 160 / 240 = 0.67: the same person
    beside = rectangle(5, 11, 20, 10)  # IoU with shifted 120 / 280 = 0.43: another one
    other = rectangle(30, 40, 10, 10)
    small_size = [proposal(person, 0.6), proposal(beside, 0.5)]
    large_size = [proposal(shifted, 0.7), proposal(other, 0.3)]
    merged = merge_proposals([small_size, large_size])
    assert [(p.mask is m, p.score) for p, m in zip(merged, (shifted, beside, other))] == \
        [(True, 0.7), (True, 0.5), (True, 0.3)]
    # at equal scores the earlier list's proposal is kept; a stricter threshold keeps both
    tie = merge_proposals([[proposal(person, 0.5)], [proposal(shifted, 0.5)]])
    assert len(tie) == 1 and tie[0].mask is person
    assert len(merge_proposals([[proposal(person, 0.5)], [proposal(shifted, 0.5)]], max_iou=0.7)) == 2
    assert merge_proposals([[], []]) == []


def test_network_proposer_merges_its_sizes() -> None:
    from vcseg.infer.discovery import network_proposer

    frame = np.full((50, 70, 3), 128, np.uint8)
    frame[5:45, 5:30] = (230, 20, 20)
    frame[10:40, 40:65] = (20, 20, 230)
    model = ColourOracle()
    single = network_proposer(model, 40)(0, frame)
    both = network_proposer(model, 40, extra_sizes=(64,))(0, frame)
    # the network ran at short sides 40 (48x64 padded) and 64 (64x96 after 89.6 -> 96 of padding)
    assert [seen[0] for seen in model.seen] == [(1, 3, 48, 64), (1, 3, 48, 64), (1, 3, 64, 96)]
    assert len(single) == len(both) == 2  # each square found at both sizes, kept once
    truth = [rectangle(5, 5, 40, 25, (50, 70)), rectangle(10, 40, 30, 25, (50, 70))]
    assert sorted(max(range(2), key=lambda k: iou(p.mask, truth[k])) for p in both) == [0, 1]
    assert all(max(iou(p.mask, t) for t in truth) > 0.8 for p in both)
