"""Proposals made from ground-truth masks with controlled errors: the tracking logic measured
apart from the proposal network.

On real footage the default proposal network is weak (it was trained on procedural videos only),
so a benchmark of tracking there mostly measures that network. A `SimulatedProposer` stands in
for a proposal network of known quality: every person of a frame's ground truth becomes a
proposal, except that it is

- missed with probability `miss_rate`;
- grown or shrunk at its boundary by a radius drawn uniformly from +-`boundary` x the frame's
  short side (a disk dilation or erosion);
- with probability `fragment_rate`, cut to its upper or lower part (cut between 40% and 60% of its
  height), as a network that splits a person does;

and with probability `false_rate` a frame also gets one false proposal, a disk of 5-15% of the
short side on background pixels. True proposals score uniformly in [0.4, 1), false ones in
[0.3, 0.6).

The draws depend only on (seed, frame index, person id), so two methods that ask for the same
frame (tracking on key frames, a baseline on every frame) see the same proposals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from vcseg.infer.proposals import Proposal
from vcseg.io.layouts import VideoFiles
from vcseg.io.masks import read_mask

FALSE_PROPOSAL_KEY = 1 << 16  # the false proposal's draws: a key no person id (0..255) takes
MIN_AREA = 50  # pixels: smaller simulated proposals are left out, as the network's min_proposal_area does


@dataclass(frozen=True)
class ProposalErrors:
    """How far simulated proposals are from the truth (module docstring)."""

    miss_rate: float = 0.2
    boundary: float = 0.01
    fragment_rate: float = 0.15
    false_rate: float = 0.1

    def __post_init__(self) -> None:
        for name in ("miss_rate", "fragment_rate", "false_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] (got {getattr(self, name)})")
        if not 0.0 <= self.boundary < 0.5:
            raise ValueError(f"boundary must be in [0, 0.5) of the short side (got {self.boundary})")

    def describe(self) -> str:
        return (f"{self.miss_rate:.0%} missed, boundaries +-{self.boundary:.0%} of the short side, "
                f"{self.fragment_rate:.0%} fragments, a false one on {self.false_rate:.0%} of frames")


@lru_cache(maxsize=32)
def disk(radius: int) -> np.ndarray:
    """A (2r+1, 2r+1) bool disk: the structuring element of boundary errors and false proposals."""
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius


def _proposal(mask: np.ndarray, score: float) -> Proposal | None:
    area = int(mask.sum())
    if area < MIN_AREA:
        return None
    ys, xs = np.nonzero(mask)
    return Proposal(mask=mask, score=score, centre=(float(ys.mean()), float(xs.mean())), area=area)


def simulate_proposals(truth: np.ndarray, errors: ProposalErrors, seed: int, frame_index: int) -> list[Proposal]:
    """One frame's simulated proposals from its (H, W) uint8 ground-truth ids, best first."""
    height, width = truth.shape
    short_side = min(height, width)
    proposals = []
    for person in np.unique(truth)[1:] if truth.any() else []:
        rng = np.random.default_rng([seed, frame_index, int(person)])
        if rng.random() < errors.miss_rate:
            continue
        mask = truth == person
        radius = int(round(rng.uniform(-errors.boundary, errors.boundary) * short_side))
        if radius > 0:
            mask = ndimage.binary_dilation(mask, disk(radius))
        elif radius < 0:
            mask = ndimage.binary_erosion(mask, disk(-radius))
        if rng.random() < errors.fragment_rate and mask.any():
            rows = np.flatnonzero(mask.any(axis=1))
            cut = int(rows[0] + rng.uniform(0.4, 0.6) * (rows[-1] - rows[0]))
            mask = mask.copy()
            if rng.random() < 0.5:
                mask[cut:] = False  # the upper part
            else:
                mask[:cut] = False
        found = _proposal(mask, float(rng.uniform(0.4, 1.0)))
        if found is not None:
            proposals.append(found)
    rng = np.random.default_rng([seed, frame_index, FALSE_PROPOSAL_KEY])
    if rng.random() < errors.false_rate:
        radius = max(1, int(rng.uniform(0.05, 0.15) * short_side))
        if 2 * radius + 1 <= short_side:
            top, left = int(rng.integers(0, height - 2 * radius)), int(rng.integers(0, width - 2 * radius))
            mask = np.zeros((height, width), bool)
            mask[top:top + 2 * radius + 1, left:left + 2 * radius + 1] = disk(radius)
            found = _proposal(mask & (truth == 0), float(rng.uniform(0.3, 0.6)))
            if found is not None:
                proposals.append(found)
    proposals.sort(key=lambda proposal: -proposal.score)
    return proposals


class SimulatedProposer:
    """A `Proposer` for one video: frame index -> its ground-truth mask file -> simulated proposals.

    masks: {frame index: PNG path}; a frame without a mask has no proposals. A mask of another
    size than its frame is an error (the proposals must lie on the frame's pixels).
    """

    def __init__(self, masks: Mapping[int, str | Path], errors: ProposalErrors = ProposalErrors(), seed: int = 0):
        self.masks, self.errors, self.seed = dict(masks), errors, seed

    @classmethod
    def for_video(cls, video: VideoFiles, errors: ProposalErrors = ProposalErrors(),
                  seed: int = 0) -> SimulatedProposer:
        """The proposer of an annotated video (frame i is the i-th of `video.frames`)."""
        return cls({i: video.masks[stem] for i, stem in enumerate(video.frames) if stem in video.masks}, errors, seed)

    def __call__(self, index: int, frame: np.ndarray) -> list[Proposal]:
        if index not in self.masks:
            return []
        truth = read_mask(self.masks[index])
        if truth.shape != frame.shape[:2]:
            raise ValueError(f"{self.masks[index]}: mask is {truth.shape[0]}x{truth.shape[1]}, its frame "
                             f"{frame.shape[0]}x{frame.shape[1]}")
        return simulate_proposals(truth, self.errors, self.seed, index)
