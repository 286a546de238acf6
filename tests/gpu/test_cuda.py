"""The GPU paths on a real GPU (skipped without CUDA; `make gpu-check` runs them on one)."""

from __future__ import annotations

import pytest
import torch

from tests.train.conftest import tiny_config
from vcseg.model.precision import autocast_dtype
from vcseg.train.checkpoint import rng_state, set_rng_state
from vcseg.train.loop import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cuda_rng_state_round_trips_on_the_last_gpu():
    device = torch.device("cuda", torch.cuda.device_count() - 1)
    state = rng_state(device)
    first = torch.rand(4, device=device)
    set_rng_state(state, device)
    assert torch.equal(torch.rand(4, device=device), first)


def test_auto_precision_matches_the_gpu():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else None
    assert autocast_dtype("auto", torch.device("cuda", 0)) == expected


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_deterministic_gpu_training_resumes_exactly(tiny_videos, tmp_path, precision):
    config = tiny_config(tiny_videos, "train.steps=4", "train.checkpoint_every=1000", "train.device=cuda",
                         f"train.precision={precision}", "train.deterministic=true")
    straight = [r.loss for r in train(config, tmp_path / "a").history]
    first = train(config, tmp_path / "b", stop_after=2)
    resumed = train(None, tmp_path / "b", resume=True)
    assert [r.loss for r in first.history + resumed.history] == straight


def test_fp16_cpu_run_resumes_on_the_gpu(tiny_videos, tmp_path, monkeypatch):
    config = tiny_config(tiny_videos, "train.steps=3", "train.device=auto", "train.precision=fp16")
    with monkeypatch.context() as cpu_only:
        cpu_only.setattr(torch.cuda, "is_available", lambda: False)
        train(config, tmp_path / "run", stop_after=1)  # on the CPU: a disabled GradScaler, saved empty
    resumed = train(None, tmp_path / "run", resume=True)  # on the GPU: an enabled one
    assert resumed.steps_done == 3
