"""The engine's memory writes (STM: every frame; STCN: memory frames only) and the input size rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.infer.conftest import random_frames, tiny_model, two_boxes
from vcseg.infer.engine import InferenceEngine
from vcseg.infer.memory import TEMPORARY
from vcseg.infer.options import PredictOptions
from vcseg.infer.propagate import VideoStats, predict_video


def _run(previous_in_memory: bool, frames: int = 7, mem_every: int = 3):
    model = tiny_model()
    calls = []
    encode_value = model.encode_value

    def counted(frame, features, masks, *args, **kwargs):
        calls.append(engine.frame_index)
        return encode_value(frame, features, masks, *args, **kwargs)

    model.encode_value = counted
    engine = InferenceEngine(model, mem_every=mem_every, working_size=4, previous_in_memory=previous_in_memory)
    mask = torch.from_numpy(two_boxes(32, 48) == 1).float()
    kinds = []
    with torch.inference_mode():
        for t, frame in enumerate(random_frames(frames, 32, 48)):
            image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
            engine.step(image, {1: mask} if t == 0 else None)
            kinds.append([entry.kind for entry in engine.memory.entries])
    return calls, kinds, engine


def test_stm_writes_every_frame_stcn_only_memory_frames():
    stm_calls, stm_kinds, _ = _run(previous_in_memory=True)
    stcn_calls, stcn_kinds, stcn = _run(previous_in_memory=False)
    assert stm_calls == [0, 1, 2, 3, 4, 5, 6]
    assert stcn_calls == [0, 3, 6]  # the first frame, then every mem_every-th: the value encoder ran 3 of 7 times
    assert any(TEMPORARY in kinds for kinds in stm_kinds)
    assert not any(TEMPORARY in kinds for kinds in stcn_kinds)
    assert stcn._prev_masks is not None and stcn._prev_masks.shape[:2] == (1, 1)  # the spatial constraint's input


def test_the_previous_mask_still_steers_the_next_frame_without_its_value():
    # same frames, same weights: the two engines agree on the frames where their memories hold the
    # same entries (frame 1 reads frame 0 in both), and differ after
    frames = random_frames(4, 32, 48)
    first = two_boxes(32, 48)
    stm = predict_video([tiny_model()], frames, {0: first}, PredictOptions(size=32, mem_every=5))
    stcn = predict_video([tiny_model()], frames, {0: first}, PredictOptions(size=32, mem_every=5,
                                                                            previous_in_memory=False))
    np.testing.assert_array_equal(stm[0], stcn[0])
    np.testing.assert_array_equal(stm[1], stcn[1])


@pytest.mark.parametrize("size, upsample, expected", [(480, False, 24), (480, True, 480), (16, False, 16)])
def test_size_never_upsamples_unless_asked(size, upsample, expected):
    options = PredictOptions(size=size, upsample=upsample)
    assert options.network_short_side(24, 40) == expected
    stats = VideoStats()
    predict_video([tiny_model()], random_frames(2, 24, 40), {0: two_boxes(24, 40)}, options, stats=stats)
    assert stats.short_side == expected


@pytest.mark.parametrize("previous_in_memory", [True, False])
def test_groups_read_against_one_affinity_equal_groups_read_one_by_one(previous_in_memory, monkeypatch):
    """Objects that joined at frames 0, 2 and 3 are three read groups; the engine's shared-affinity
    read gives what reading each group from its own entries gives."""
    boxes = two_boxes(32, 48)
    starts = {0: {1: boxes == 1}, 2: {2: boxes == 2}, 3: {3: np.roll(boxes == 1, 20, axis=1)}}

    def run(shared: bool) -> list[torch.Tensor]:
        model = tiny_model()
        engine = InferenceEngine(model, mem_every=2, working_size=4, previous_in_memory=previous_in_memory)
        if not shared:
            monkeypatch.setattr(engine.memory, "read_groups", lambda groups: None)
        shared_reads = []
        read_groups = model.read_memory_groups
        model.read_memory_groups = lambda *args: shared_reads.append(len(args[2])) or read_groups(*args)
        outputs = []
        with torch.inference_mode():
            for t, frame in enumerate(random_frames(7, 32, 48)):
                image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
                given = {i: torch.from_numpy(m).float() for i, m in starts.get(t, {}).items()}
                outputs.append(engine.step(image, given or None))
        assert len(engine.objects.groups()) == 3
        assert (3 in shared_reads) == shared  # from frame 3 on, three groups in one read (or none such)
        return outputs

    for shared, alone in zip(run(True), run(False)):
        torch.testing.assert_close(shared, alone, rtol=1e-5, atol=1e-6)
