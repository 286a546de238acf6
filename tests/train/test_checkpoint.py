from __future__ import annotations

import random

import numpy as np
import torch
from click.testing import CliRunner

from tests.model.conftest import crafted_checkpoint
from vcseg.cli import main
from vcseg.config import Config, ModelConfig
from vcseg.model.checkpoint import load_checkpoint, load_memory_network
from vcseg.model.network import build_model
from vcseg.train.checkpoint import rng_state, save_checkpoint, set_rng_state


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


def _one_line_error(result):
    lines = [line for line in result.output.splitlines() if line.strip()]
    return result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: ") \
        and "Traceback" not in result.output


def test_cli_refuses_a_crafted_checkpoint_in_predict_and_resume(tmp_path):
    from tests.conftest import make_video, person_masks

    make_video(tmp_path / "frames", "a", person_masks(2), layout="frames-only")
    evil = crafted_checkpoint(tmp_path / "evil.pt", tmp_path / "marker")
    result = CliRunner().invoke(main, ["predict", "--video-dir", str(tmp_path / "frames"), "--out",
                                       str(tmp_path / "pred"), "--checkpoint", str(evil)])
    assert _one_line_error(result), result.output
    assert "refused to load: it holds posix.system" in result.output
    assert not (tmp_path / "marker").exists()

    run = tmp_path / "run"
    crafted_checkpoint(run / "checkpoints" / "last.pt", tmp_path / "marker")
    result = CliRunner().invoke(main, ["train", "--out", str(run), "--resume"])
    assert _one_line_error(result), result.output
    assert "last.pt: refused to load: it holds posix.system" in result.output
    assert not (tmp_path / "marker").exists()
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints"]  # nothing trained, nothing written


def test_new_checkpoints_hold_plain_values_only(tiny_videos, tmp_path):
    from tests.train.conftest import tiny_config
    from vcseg.train.loop import train

    last = train(tiny_config(tiny_videos, "train.steps=1"), tmp_path / "run").last_checkpoint
    assert torch.serialization.get_unsafe_globals_in_checkpoint(last) == []
    state = torch.load(last, weights_only=True)  # no allow-list needed
    kind, key, position, _, _ = state["train"]["rng"]["numpy"]
    assert kind == "MT19937" and key.dtype == torch.int64 and key.shape == (624,) and 0 <= position <= 624


def test_rng_state_round_trips_in_the_new_and_the_old_numpy_form(tmp_path):
    np.random.seed(7)
    random.seed(7)
    torch.manual_seed(7)
    new_form = rng_state()
    old_form = dict(new_form, numpy=np.random.get_state())  # as checkpoints before plain values held it
    expected = (np.random.random(3).tolist(), random.random(), torch.rand(2).tolist())
    for name, state in (("new.pt", new_form), ("old.pt", old_form)):
        np.random.seed(8)
        random.seed(8)
        torch.manual_seed(8)
        save_checkpoint(tmp_path / name, config={}, models={}, train={"step": 1, "rng": state})
        set_rng_state(load_checkpoint(tmp_path / name)["train"]["rng"])
        assert (np.random.random(3).tolist(), random.random(), torch.rand(2).tolist()) == expected, name
    assert "numpy.ndarray" in torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "old.pt")
