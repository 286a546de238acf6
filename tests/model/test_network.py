"""The memory network's verbs and training forward on tiny inputs."""

from __future__ import annotations

import pytest
import torch

from tests.model.conftest import tiny_config
from vcseg.config import ModelConfig
from vcseg.errors import VcsegError
from vcseg.model import MemoryNetwork, memory

H, W = 48, 80  # multiples of 16 but not of 32: stride 16 -> 3 x 5


@pytest.fixture(scope="module")
def model() -> MemoryNetwork:
    torch.manual_seed(0)
    return MemoryNetwork(tiny_config()).eval()


def squares(batch: int = 2, objects: int = 2) -> torch.Tensor:
    masks = torch.zeros(batch, objects, H, W)
    for k in range(objects):
        masks[:, k, 8 + 12 * k:20 + 12 * k, 10 + 20 * k:30 + 20 * k] = 1
    return masks


def test_every_verb_has_the_documented_shapes(model):
    frames = torch.rand(2, 3, H, W)
    key, features = model.encode_key(frames)
    assert key.shape == (2, 16, 3, 5)
    assert features.f16.shape == (2, 256, 3, 5)
    assert features.f8.shape == (2, 128, 6, 10)
    assert features.f4.shape == (2, 64, 12, 20)
    assert features.value.shape == (2, 32, 3, 5)
    value = model.encode_value(frames, features, squares())
    assert value.shape == (2, 2, 32, 3, 5)
    memory_keys = torch.stack([key, key, key], dim=2)  # B, Ck, T=3, h, w
    memory_values = torch.stack([value, value, value], dim=3)  # B, K, Cv, T=3, h, w
    readout = model.read_memory(key, memory_keys, memory_values)
    assert readout.shape == (2, 2, 32, 3, 5)
    logits, probs = model.segment(readout, features, squares())
    assert logits.shape == probs.shape == (2, 3, H, W)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2, H, W))


def test_model_read_shares_one_affinity_between_objects(model):
    generator = torch.Generator().manual_seed(0)
    query_key = torch.randn(1, 16, 3, 5, generator=generator)
    memory_keys = torch.randn(1, 16, 2, 3, 5, generator=generator)
    memory_values = torch.randn(1, 3, 32, 2, 3, 5, generator=generator)
    readout = model.read_memory(query_key, memory_keys, memory_values)
    for k in range(3):  # each object alone, with the plain function and no chunking
        expected = memory.read_memory(memory_keys.flatten(2), memory_values[:, k].flatten(2),
                                      query_key.flatten(2), kind="l2")
        torch.testing.assert_close(readout[:, k], expected.view(1, 32, 3, 5))


def test_forward_equals_the_verbs_driven_frame_by_frame(model):
    torch.manual_seed(1)
    frames, masks = torch.rand(2, 3, 3, H, W), squares()
    with torch.no_grad():
        logits = model(frames, masks)
        keys, values, prev = [], [], masks
        for t in range(3):
            key, features = model.encode_key(frames[:, t])
            if t > 0:
                readout = model.read_memory(key, torch.stack(keys, 2), torch.stack(values, 3))
                step_logits, probs = model.segment(readout, features, prev)
                torch.testing.assert_close(logits[:, t - 1], step_logits, rtol=1e-4, atol=1e-4)
                prev = probs[:, 1:]
            keys.append(key)
            values.append(model.encode_value(frames[:, t], features, prev))
    assert logits.shape == (2, 2, 3, H, W)


def test_invalid_object_slots_get_no_probability(model):
    valid = torch.tensor([[True, False], [True, True]])
    masks = squares()
    masks[0, 1] = 0
    with torch.no_grad():
        probs = torch.softmax(model(torch.rand(2, 3, 3, H, W), masks, valid), dim=2)
    assert (probs[0, :, 2] == 0).all()
    assert (probs[1, :, 2] > 0).any()
    torch.testing.assert_close(probs.sum(dim=2), torch.ones(2, 2, H, W))


def test_sizes_not_a_multiple_of_16_and_too_many_objects_are_refused(model):
    with pytest.raises(ValueError, match="multiple of 16"):
        model.encode_key(torch.rand(1, 3, 40, 48))
    with pytest.raises(VcsegError, match="max_objects"):
        model(torch.rand(1, 2, 3, H, W), torch.zeros(1, 9, H, W))


def test_spatial_constraint_on_uses_the_previous_mask_and_off_ignores_it(model):
    off = MemoryNetwork(tiny_config(spatial_constraint=False)).eval()
    missing, unexpected = off.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(name.startswith("spatial_constraint.") for name in unexpected)
    frames = torch.rand(1, 3, H, W)
    with torch.no_grad():
        key, features = model.encode_key(frames)
        value = model.encode_value(frames, features, squares(1))
        readout = model.read_memory(key, key.unsqueeze(2), value.unsqueeze(3))
        near, far = squares(1), squares(1).roll(shifts=(20, 40), dims=(2, 3))
        on_near, on_far = model.segment(readout, features, near)[1], model.segment(readout, features, far)[1]
        off_near, off_far = off.segment(readout, features, near)[1], off.segment(readout, features, far)[1]
        _, attention = model.spatial_constraint(torch.cat([readout, readout], 2).flatten(0, 1),
                                                near.flatten(0, 1).unsqueeze(1))
    assert not torch.allclose(on_near, on_far)
    assert torch.equal(off_near, off_far)
    assert not torch.allclose(on_near, off_near)
    assert attention.min() > 0 and attention.max() < 1
    with pytest.raises(ValueError, match="prev_masks"):
        model.segment(readout, features, None)


def test_bf16_autocast_forward_is_close_to_float32(model):
    torch.manual_seed(2)
    frames, masks = torch.rand(1, 3, 3, H, W), squares(1)
    with torch.no_grad():
        full = torch.softmax(model(frames, masks), dim=2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low_logits = model(frames, masks)
    assert low_logits.dtype == torch.float32  # aggregation runs in float32
    low = torch.softmax(low_logits, dim=2)
    assert (low - full).abs().max() < 0.05
    assert (low - full).abs().mean() < 0.005


def test_channels_last_gives_the_same_output(model):
    other = MemoryNetwork(tiny_config(channels_last=True)).eval()
    other.load_state_dict(model.state_dict())
    assert other.encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    frames, masks = torch.rand(1, 2, 3, H, W), squares(1)
    with torch.no_grad():
        torch.testing.assert_close(other(frames, masks), model(frames, masks), rtol=1e-4, atol=1e-4)


def test_top_k_and_dot_affinity_change_the_read(model):
    frames, masks = torch.rand(1, 3, 3, H, W), squares(1)
    state = model.state_dict()
    with torch.no_grad():
        reference = model(frames, masks)
        for changes in ({"top_k": 3}, {"affinity": "dot"}):
            variant = MemoryNetwork(tiny_config(**changes)).eval()
            variant.load_state_dict(state)
            assert not torch.allclose(variant(frames, masks), reference)


def test_encoder_weights_from_the_config(tmp_path, model):
    path = tmp_path / "encoder.pt"
    torch.save(model.encoder.state_dict(), path)
    loaded = MemoryNetwork(tiny_config(encoder_weights=str(path)))
    assert torch.equal(loaded.encoder.layer3[0].conv1.weight, model.encoder.layer3[0].conv1.weight)


def test_training_gradients_reach_every_trainable_parameter():
    torch.manual_seed(3)
    model = MemoryNetwork(tiny_config())
    logits = model(torch.rand(2, 3, 3, H, W), squares())
    logits.logsumexp(dim=2).mean().backward()
    without_gradient = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert without_gradient == []


def test_default_config_builds_the_stm_sized_model():
    config = ModelConfig()
    assert (config.encoder, config.key_dim, config.value_dim) == ("resnet50", 64, 512)


@pytest.mark.parametrize("channels_last", [False, True])
def test_values_one_object_at_a_time_equal_the_batched_values(model, channels_last):
    """Without gradients on a CPU the value encoder runs once per object of each frame; with
    gradients all at once. Both give every (frame, object) its own value, in the same order."""
    net = MemoryNetwork(tiny_config(channels_last=channels_last)).eval()
    net.load_state_dict(model.state_dict())
    frames = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(3))
    masks = squares(2, 3)
    masks[1] = masks[1].roll(shifts=(5, 7), dims=(1, 2))  # the second frame's objects elsewhere
    with torch.no_grad():
        _, features = net.encode_key(frames)
        one_at_a_time = net.encode_value(frames, features, masks)
        swapped = net.encode_value(frames, features, masks[:, [2, 0, 1]])
    batched = net.encode_value(frames, features, masks).detach()  # gradients on: one batch
    torch.testing.assert_close(one_at_a_time, batched, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(swapped, one_at_a_time[:, [2, 0, 1]])
    assert not torch.allclose(one_at_a_time[0], one_at_a_time[1])
