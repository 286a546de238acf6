from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.infer.conftest import copy_model, random_frames, save_tiny_checkpoint, tiny_model, two_boxes
from vcseg.errors import VcsegError
from vcseg.infer.engine import InferenceEngine
from vcseg.infer.options import PredictOptions
from vcseg.infer.propagate import GivenMasks, VideoStats, predict_video


@pytest.mark.parametrize("height, width", [(480, 854), (481, 853)])
def test_masks_come_back_at_the_original_size(height, width):
    frames = random_frames(3, height, width)
    first = two_boxes(height, width)
    masks = predict_video([tiny_model()], frames, {0: first}, PredictOptions(size=64))
    assert len(masks) == 3
    for mask in masks:
        assert mask.shape == (height, width) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1, 2}
    np.testing.assert_array_equal(masks[0], first)  # the given frame is the given mask


def test_objects_added_mid_video_get_their_ids_and_keep_them():
    # The copy model repeats the previous mask, so the expected output is known exactly.
    height, width = 48, 64
    frames = random_frames(8, height, width)
    first = two_boxes(height, width, ids=(3, 5))
    late = np.zeros((height, width), np.uint8)
    late[33:47, 2:16] = 9  # a new object, clear of the boxes of frame 0
    late[40:47, 30:40] = 3  # id 3 again at frame 4: already tracked, so ignored
    masks = predict_video([copy_model()], frames, {0: first, 4: late}, PredictOptions(size=48))
    with_new = np.where(late == 9, 9, first)
    for t, mask in enumerate(masks):
        np.testing.assert_array_equal(mask, first if t < 4 else with_new)


def test_object_starting_after_frame_0_and_nothing_before():
    frames = random_frames(4, 32, 48)
    late = two_boxes(32, 48, ids=(7, 8))
    masks = predict_video([copy_model()], frames, {2: late}, PredictOptions(size=32))
    assert [np.unique(m).tolist() for m in masks] == [[0], [0], [0, 7, 8], [0, 7, 8]]


def test_removed_object_leaves_and_others_keep_their_ids():
    engine = InferenceEngine(copy_model(), mem_every=2, working_size=2, previous_in_memory=True)
    frame = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    first = torch.from_numpy(two_boxes(32, 48, ids=(1, 2)))
    with torch.inference_mode():
        engine.step(frame, {1: (first == 1).float(), 2: (first == 2).float()})
        engine.step(frame)
        later = torch.zeros(32, 48)
        later[0:3, 40:48] = 1
        engine.step(frame, {6: later})
        engine.remove_object(1)
        assert engine.ids == [2, 6]
        probs = engine.step(frame)
    assert probs.shape == (3, 32, 48)
    lookup = torch.tensor([0, *engine.ids])
    ids = lookup[probs.argmax(dim=0)]
    expected = torch.where(later > 0, 6, torch.where(first == 2, 2, 0))
    assert torch.equal(ids, expected)
    assert all(1 not in entry.ids for entry in engine.memory.entries)
    assert engine.memory.frame_indices() == [0, 2, 3]  # frame 0 stays for object 2; 2 introduced 6


def test_scales_and_flip_give_the_single_scale_result_for_a_scale_invariant_model():
    height, width = 45, 61
    frames = random_frames(8, height, width)
    first = two_boxes(height, width)
    late = np.zeros((height, width), np.uint8)
    late[30:44, 2:15] = 7
    given = {0: first, 3: late}
    single = predict_video([copy_model()], frames, given, PredictOptions(size=45))
    expected = [first] * 3 + [np.where(late > 0, late, first)] * 5
    for mask, wanted in zip(single, expected):
        np.testing.assert_array_equal(mask, wanted)
    # Padding, flips and integer upscales resample masks without loss: exactly the same masks.
    exact = predict_video([copy_model()], frames, given, PredictOptions(size=45, scales=(1.0, 2.0, 3.0), flip=True))
    for mask, wanted in zip(exact, expected):
        np.testing.assert_array_equal(mask, wanted)
    # Fractional scales resample: a pixel may flip, but only on an object's edge.
    fractional = predict_video([copy_model()], frames, given,
                               PredictOptions(size=45, scales=(0.75, 1.0, 1.25), flip=True))
    for mask, wanted in zip(fractional, expected):
        differ = mask != wanted
        assert differ.sum() <= 3
        assert not (differ & ~edges(wanted)).any()


def edges(ids: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another id."""
    edge = np.zeros(ids.shape, bool)
    edge[:-1] |= ids[:-1] != ids[1:]
    edge[1:] |= ids[1:] != ids[:-1]
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    return edge


def test_ensemble_of_two_copies_equals_the_checkpoint(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "a.pt", seed=3)
    frames = random_frames(6, 40, 56)
    given = {0: two_boxes(40, 56)}
    options = PredictOptions(size=48, mem_every=2, mem_size=2)
    alone = predict_video([path], frames, given, options)
    pair = predict_video([path, path], frames, given, options)
    assert any((mask != given[0]).any() for mask in alone[1:])  # the random model does change masks
    for one, two in zip(alone, pair):
        np.testing.assert_array_equal(one, two)


def test_loaded_models_keep_their_mode_and_top_k_is_read_only_for_the_read():
    model = tiny_model().train()
    stats = VideoStats()
    masks = predict_video([model], random_frames(4, 32, 32), {0: two_boxes(32, 32)},
                          PredictOptions(size=32, top_k=5), stats=stats)
    assert len(masks) == 4 and model.training and model.config.top_k == 0
    assert stats.frames == 4 and stats.memory_bank_peak_bytes > 0


def test_top_k_changes_the_read():
    frames = random_frames(4, 32, 48)
    given = {0: two_boxes(32, 48)}
    model = tiny_model(seed=1)
    captured = {}

    def spy(top_k):  # the engine reads through read_memory_groups (read_memory is its one-group case)
        original = type(model).read_memory_groups

        def read(self, *args):
            captured.setdefault(top_k, []).append(self.config.top_k)
            return original(self, *args)
        return read

    for top_k in (None, 3):
        model.read_memory_groups = spy(top_k).__get__(model)
        predict_video([model], frames, given, PredictOptions(size=32, top_k=top_k))
    assert set(captured[None]) == {0} and set(captured[3]) == {3}


def test_given_masks_source_checks_sizes_and_brings_only_new_ids():
    source = GivenMasks({0: np.array([[1, 2]], np.uint8), 1: np.array([[2, 4]], np.uint8)})
    frame = np.zeros((1, 2, 3), np.uint8)
    np.testing.assert_array_equal(source(0, frame, torch.ones(1, 1, 2), []), [[1, 2]])
    np.testing.assert_array_equal(source(1, frame, torch.ones(3, 1, 2), [1, 2]), [[0, 4]])
    assert source(2, frame, torch.ones(4, 1, 2), [1, 2, 4]) is None
    with pytest.raises(VcsegError, match="give masks of the frames' size"):
        GivenMasks({0: np.zeros((2, 2), np.uint8)})(0, frame, torch.ones(1, 1, 2), [])


def test_no_first_masks_is_a_clear_error():
    with pytest.raises(VcsegError, match="first masks are needed"):
        predict_video([tiny_model()], random_frames(1, 16, 16))
