from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.model.conftest import crafted_checkpoint
from vcseg.errors import VcsegError
from vcseg.model.checkpoint import PACK_ALIGNMENT, dequantize, load_checkpoint, pack_tensors, unpack_tensors
from vcseg.train.checkpoint import save_checkpoint


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(VcsegError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(VcsegError, match="not a vcseg checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_a_crafted_checkpoint_is_refused_without_running_its_code(tmp_path):
    # the file is live: an unchecked torch.load runs its command
    control = crafted_checkpoint(tmp_path / "control.pt", tmp_path / "control-marker")
    torch.load(control, weights_only=False)
    assert (tmp_path / "control-marker").exists()

    evil = crafted_checkpoint(tmp_path / "evil.pt", tmp_path / "marker")
    with pytest.raises(VcsegError) as refused:
        load_checkpoint(evil)
    message = str(refused.value)
    assert message.startswith(f"{evil}: refused to load: it holds posix.system which a vcseg checkpoint "
                              "never contains;") and "\n" not in message
    assert not (tmp_path / "marker").exists()


def test_dequantize_scales_each_output_channel():
    q = torch.tensor([[[1, -2]], [[127, 0]]], dtype=torch.int8)  # 2 output channels
    restored = dequantize(q, torch.tensor([0.5, 2.0]))
    assert restored.dtype == torch.float32 and restored.shape == q.shape
    assert restored.flatten().tolist() == [0.5, -1.0, 254.0, 0.0]


def test_the_committed_default_weights_still_load():
    weights = Path(__file__).resolve().parents[2] / "weights" / "default.pt"
    state = load_checkpoint(weights)
    assert {"memory", "proposals"} <= set(state["models"]) and state["format"] == "vcseg-checkpoint"
    assert all(value.dtype == torch.float32 for value in state["models"]["memory"].values()
               if value.is_floating_point() and value.dim() >= 2 and value.numel() >= 1024)  # int8 dequantized


def _mixed_state() -> dict[str, torch.Tensor]:
    """Tensors of every kind a state dict holds: odd byte counts (so alignment matters), a 0-dim
    counter, an empty tensor, a non-contiguous view, half and bfloat16 values."""
    generator = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(3, 5, 3, 3, generator=generator),
            "bn.num_batches_tracked": torch.tensor(7),
            "odd.bytes": torch.arange(5, dtype=torch.int8),
            "half": torch.randn(7, generator=generator).half(),
            "brain": torch.randn(2, 3, generator=generator).bfloat16(),
            "empty": torch.empty(0, 4),
            "transposed": torch.arange(12.0).reshape(3, 4).t(),
            "flags": torch.tensor([True, False, True])}


def test_packed_tensors_round_trip_exactly_and_aligned():
    state = _mixed_state()
    packed = pack_tensors(state)
    assert packed["data"].dtype == torch.uint8 and packed["data"].dim() == 1
    unpacked = unpack_tensors(packed)
    assert list(unpacked) == list(state)  # order kept: load_state_dict reports in it
    for name, tensor in state.items():
        assert unpacked[name].dtype == tensor.dtype and unpacked[name].shape == tensor.shape, name
        assert torch.equal(unpacked[name], tensor), name
        assert unpacked[name].data_ptr() % PACK_ALIGNMENT == packed["data"].data_ptr() % PACK_ALIGNMENT
    # 3*5*3*3 float32 = 540 bytes, so the next tensor starts at 576, the next multiple of 64
    assert [entry[3] for entry in json.loads(packed["index"])][:3] == [0, 576, 640]


def test_checkpoints_are_packed_and_version_1_files_still_load(tmp_path):
    state = _mixed_state()
    q = {"conv.weight": {"q": torch.tensor([[1, -2], [127, 0]], dtype=torch.int8), "scale": torch.tensor([0.5, 2.0])}}
    written = save_checkpoint(tmp_path / "v2.pt", config={"a": 1}, models={"memory": state}, quantized={"memory": q})
    raw = torch.load(written, weights_only=True)
    assert raw["version"] == 2 and set(raw["models"]["memory"]) == {"index", "data"}
    # as vcseg wrote checkpoints before packing: plain state dicts
    torch.save({"format": "vcseg-checkpoint", "version": 1, "config": {"a": 1}, "models": {"memory": state},
                "quantized": {"memory": q}}, tmp_path / "v1.pt")
    for path in (written, tmp_path / "v1.pt"):
        loaded = load_checkpoint(path)
        assert loaded["config"] == {"a": 1} and set(loaded["models"]["memory"]) == set(state) | {"conv.weight"}
        assert loaded["models"]["memory"]["conv.weight"].tolist() == [[0.5, -1.0], [254.0, 0.0]]  # dequantized
        for name in set(state) - {"conv.weight"}:
            assert torch.equal(loaded["models"]["memory"][name], state[name]), (path, name)


def test_a_damaged_packed_index_is_named(tmp_path):
    packed = pack_tensors({"w": torch.ones(4)})
    for index in ('[["w", "float32", [400], 0]]',  # runs past the data
                  '[["w", "load", [4], 0]]',  # not a dtype: never looked up on torch
                  '[["w", "float32", [1], 3]]'):  # not aligned
        torch.save({"format": "vcseg-checkpoint", "version": 2, "config": {},
                    "models": {"memory": {"index": index, "data": packed["data"]}}}, tmp_path / "bad.pt")
        with pytest.raises(VcsegError, match=r"bad\.pt: damaged checkpoint .*; export or train it again"):
            load_checkpoint(tmp_path / "bad.pt")
