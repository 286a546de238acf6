from __future__ import annotations

import numpy as np

from tests.conftest import make_video, person_masks
from vcseg.infer.baselines import copy_first_mask_forward
from vcseg.io.layouts import find_dataset
from vcseg.io.masks import read_mask


def test_copy_forward_writes_first_mask_everywhere(tmp_path):
    masks = person_masks(4)
    make_video(tmp_path / "data", "v", masks)
    out = copy_first_mask_forward(find_dataset(tmp_path / "data"), tmp_path / "pred")
    written = sorted(p.name for p in (out / "v").iterdir())
    assert written == ["00000.png", "00001.png", "00002.png", "00003.png"]
    for name in written:
        np.testing.assert_array_equal(read_mask(out / "v" / name), masks[0])


def test_proposals_per_frame_carries_ids_by_overlap():
    from vcseg.infer.baselines import proposals_per_frame
    from vcseg.infer.proposals import Proposal

    def box(left):
        mask = np.zeros((20, 40), bool)
        mask[5:15, left:left + 8] = True
        return Proposal(mask=mask, score=0.9, centre=(10.0, left + 4.0), area=80)

    # person A drifts right by 1 px a frame (kept by IoU); person B jumps far in frame 2 (a new id)
    script = [[box(0), box(30)], [box(1), box(30)], [box(2), box(10)]]
    asked = []

    def propose(index, frame):
        asked.append(index)
        return script[index]

    frames = [np.zeros((20, 40, 3), np.uint8)] * 3
    masks = proposals_per_frame(propose, frames, max_instances=8)
    assert asked == [0, 1, 2]
    assert [int(m[10, 3]) for m in masks] == [1, 1, 1]
    assert int(masks[0][10, 33]) == int(masks[1][10, 33]) == 2
    assert int(masks[2][10, 13]) == 3
    # capped at 2: the two ids seen most often (A: 3 frames, B: 2) stay, C (1 frame) goes
    capped = proposals_per_frame(propose, frames, max_instances=2)
    assert int(capped[2][10, 3]) == 1 and int(capped[1][10, 33]) == 2 and int(capped[2][10, 13]) == 0
