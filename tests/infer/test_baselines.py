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
