from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from vcseg.cli import main
from vcseg.config import Config, ModelConfig
from vcseg.errors import VcsegError
from vcseg.model.network import build_model
from vcseg.train.checkpoint import load_checkpoint, save_checkpoint
from vcseg.train.loop import load_memory_network


def _tiny_memory_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    config = Config(model=ModelConfig(encoder="resnet18", value_encoder="resnet18", key_dim=16, value_dim=32,
                                      decoder_dim=32))
    model = build_model(config.model)
    save_checkpoint(path, config=config.to_dict(), models={"memory": model.state_dict()},
                    train={"step": 3, "optimizer": {}, "scheduler": {}, "scaler": {}, "rng": {}})
    return model


def test_export_strips_training_state_and_halves(tmp_path):
    model = _tiny_memory_checkpoint(tmp_path / "last.pt")
    result = CliRunner().invoke(main, ["export", "--memory", str(tmp_path / "last.pt"), "--out",
                                       str(tmp_path / "default.pt")])
    assert result.exit_code == 0, result.output
    exported = load_checkpoint(tmp_path / "default.pt")
    assert "train" not in exported and list(exported["models"]) == ["memory"]
    assert all(v.dtype == torch.float16 for v in exported["models"]["memory"].values() if v.is_floating_point())
    assert (tmp_path / "default.pt").stat().st_size < 0.6 * (tmp_path / "last.pt").stat().st_size
    loaded, _ = load_memory_network(tmp_path / "default.pt")
    for name, value in model.state_dict().items():
        restored = loaded.state_dict()[name]
        assert restored.dtype == value.dtype
        if value.is_floating_point():
            torch.testing.assert_close(restored, value, atol=2e-3, rtol=1e-3)


def test_export_needs_a_model_of_the_right_kind(tmp_path):
    _tiny_memory_checkpoint(tmp_path / "memory.pt")
    result = CliRunner().invoke(main, ["export", "--proposals", str(tmp_path / "memory.pt"), "--out",
                                       str(tmp_path / "x.pt")])
    assert result.exit_code == 1 and "holds no proposals model" in result.output
    assert not (tmp_path / "x.pt").exists()


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(VcsegError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(VcsegError, match="not a vcseg checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_int8_export_quarters_the_size_within_half_a_step(tmp_path):
    model = _tiny_memory_checkpoint(tmp_path / "last.pt")
    result = CliRunner().invoke(main, ["export", "--memory", str(tmp_path / "last.pt"), "--out",
                                       str(tmp_path / "int8.pt"), "--precision", "int8"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "int8.pt").stat().st_size < 0.35 * (tmp_path / "last.pt").stat().st_size
    loaded, _ = load_memory_network(tmp_path / "int8.pt")
    restored = loaded.state_dict()
    for name, value in model.state_dict().items():
        if value.is_floating_point() and value.dim() >= 2 and value.numel() >= 1024:
            # per output channel: the error is at most half a quantisation step, max|w| / 127 / 2
            step = value.reshape(value.shape[0], -1).abs().amax(dim=1) / 127
            error = (restored[name] - value).reshape(value.shape[0], -1).abs().amax(dim=1)
            assert bool((error <= step / 2 + 1e-6).all()), name
