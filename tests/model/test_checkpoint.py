from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.model.conftest import crafted_checkpoint
from vcseg.errors import VcsegError
from vcseg.model.checkpoint import dequantize, load_checkpoint


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
