"""Encoders from the smp registry: strides, frozen unused stages, weights from disk."""

from __future__ import annotations

import pytest
import torch

from vcseg.errors import VcsegError
from vcseg.model.encoders import build_encoder, skip_channels


def test_resnet18_maps_at_strides_4_8_16_and_stage_4_dropped():
    encoder = build_encoder("resnet18")
    assert skip_channels(encoder) == (64, 128, 256)
    maps = encoder(torch.randn(2, 3, 48, 80))
    assert [tuple(m.shape[-2:]) for m in maps[2:]] == [(12, 20), (6, 10), (3, 5)]
    # layer4 never runs at depth 4: an identity replaces it, so checkpoints carry no random weights
    assert isinstance(encoder.layer4, torch.nn.Identity)
    assert not any(name.startswith("layer4.") for name in encoder.state_dict())
    assert all(p.requires_grad for p in encoder.parameters())
    sum(m.sum() for m in maps[2:]).backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)


def test_five_channel_value_encoder():
    encoder = build_encoder("resnet18", in_channels=5)
    assert encoder(torch.randn(1, 5, 32, 32))[4].shape == (1, 256, 2, 2)


def test_unknown_encoder_name_is_a_vcseg_error():
    with pytest.raises(VcsegError, match="not-an-encoder"):
        build_encoder("not-an-encoder")


def test_weights_file_is_loaded(tmp_path):
    torch.manual_seed(1)
    source = build_encoder("resnet18")
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    loaded = build_encoder("resnet18", weights=path)
    for (name, expected), actual in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(expected, actual), name


def test_weights_with_a_classifier_head_and_a_wrapper_key_load(tmp_path):
    source = build_encoder("resnet18")
    state = {**source.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    path = tmp_path / "with_head.pt"
    torch.save({"state_dict": state}, path)
    loaded = build_encoder("resnet18", weights=path)
    assert torch.equal(loaded.conv1.weight, source.conv1.weight)


def test_missing_weights_file(tmp_path):
    with pytest.raises(VcsegError, match="not found"):
        build_encoder("resnet18", weights=tmp_path / "absent.pt")


def test_weights_of_another_encoder(tmp_path):
    path = tmp_path / "mobilenet.pt"
    torch.save(build_encoder("mobilenet_v2").state_dict(), path)
    with pytest.raises(VcsegError, match="missing"):
        build_encoder("resnet18", weights=path)


def test_weights_with_a_wrong_shape(tmp_path):
    state = build_encoder("resnet18").state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(VcsegError, match="conv1.weight"):
        build_encoder("resnet18", weights=path)


def test_file_without_tensors(tmp_path):
    path = tmp_path / "notes.pt"
    torch.save({"epoch": 3}, path)
    with pytest.raises(VcsegError, match="no state dict"):
        build_encoder("resnet18", weights=path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(VcsegError, match="cannot be read"):
        build_encoder("resnet18", weights=garbage)


def test_building_under_no_grad_still_freezes_unused_blocks():
    with torch.no_grad():
        encoder = build_encoder("mobilenet_v2")
    assert any(not p.requires_grad for p in encoder.parameters())
    assert encoder.features[1].conv[0][0].weight.requires_grad


def test_blocks_past_the_stride_16_map_are_frozen():
    encoder = build_encoder("mobilenet_v2")
    maps = encoder(torch.randn(2, 3, 32, 32))
    sum(m.sum() for m in maps[2:]).backward()
    frozen = [p for p in encoder.parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)
