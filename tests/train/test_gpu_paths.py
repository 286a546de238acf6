"""The GPU code paths of training, exercised on the CPU with `torch.cuda` patched: RNG state per
device, restoring on fewer GPUs, an empty GradScaler state, CUDA seeds per rank, the step timer
waiting for the GPU, gradients freed before the forward, deterministic settings."""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.train.conftest import tiny_config
from vcseg.train import distributed, loop
from vcseg.train.checkpoint import rng_state, set_rng_state
from vcseg.train.loop import deterministic_algorithms, load_scaler_state, rank_rng_state, train


@pytest.fixture
def fake_gpus(monkeypatch):
    """Two fake GPUs whose generator states are tensors we can tell apart; set states recorded."""
    restored: dict[int, torch.Tensor] = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": torch.full((4,), device.index,
                                                                                       dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": restored.__setitem__(
        torch.device(device).index, state))
    return restored


def test_each_process_saves_and_restores_its_own_gpus_state(fake_gpus):
    state = rng_state(torch.device("cuda", 1))
    assert state["cuda"].tolist() == [1, 1, 1, 1]
    assert "cuda" not in rng_state(torch.device("cpu"))  # a CPU run touches no CUDA generator
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        set_rng_state(state, torch.device("cuda", 0))  # the saved GPU's state, whichever GPU resumes it
    assert fake_gpus[0].tolist() == [1, 1, 1, 1]


def test_old_all_gpu_states_restore_on_fewer_gpus_with_a_warning(fake_gpus):
    old = {**rng_state(), "cuda": [torch.full((4,), 7, dtype=torch.uint8)]}  # get_rng_state_all on 1 GPU
    set_rng_state(old, torch.device("cuda", 0))
    assert fake_gpus[0].tolist() == [7] * 4
    with pytest.warns(UserWarning, match="CUDA random state has no GPU"):
        set_rng_state(old, torch.device("cuda", 1))  # no IndexError
    with pytest.warns(UserWarning, match="CUDA random state has no GPU"):
        set_rng_state(rng_state(torch.device("cuda", 1)), torch.device("cpu"))
    assert list(fake_gpus) == [0]


def test_each_rank_resumes_from_its_own_rng_state():
    states = [{"rank": 0}, {"rank": 1}]
    assert rank_rng_state({"rng": states[0], "rng_ranks": states}, 1) == {"rank": 1}
    assert rank_rng_state({"rng": states[0]}, 1) == {"rank": 0}  # single-process or older checkpoints
    assert rank_rng_state({"rng": states[0], "rng_ranks": states}, 2) == {"rank": 0}


def test_an_empty_scaler_state_resumes_fp16_on_a_gpu():
    scaler = torch.amp.GradScaler("cpu", enabled=True)  # as on CUDA with fp16
    saved = torch.amp.GradScaler("cpu", enabled=False).state_dict()  # an fp16 run on the CPU
    assert saved == {}
    load_scaler_state(scaler, saved)
    assert scaler.get_scale() == 65536.0
    load_scaler_state(scaler, {**scaler.state_dict(), "scale": 8.0})
    assert scaler.get_scale() == 8.0


def test_each_rank_seeds_its_gpu_differently(monkeypatch):
    seeds = []
    monkeypatch.setattr(torch.cuda, "manual_seed", seeds.append)
    for rank in range(3):
        distributed.seed_device_generators(5, rank)
    assert seeds == [5, 6, 7]


def test_steps_wait_for_the_device_and_free_gradients_before_the_forward(tiny_videos, tmp_path, monkeypatch):
    synced, grads_at_forward, grads_at_validation = [], [], []
    monkeypatch.setattr(loop, "synchronize", synced.append)
    make_task = loop.make_task

    def watched_task(config):
        task = make_task(config)
        loss = task.loss

        def watched_loss(network, *args, **kwargs):
            grads_at_forward.append(sum(p.grad is not None for p in network.parameters()))
            return loss(network, *args, **kwargs)

        task.loss = watched_loss
        return task

    def validate(model):
        grads_at_validation.append(sum(p.grad is not None for p in model.parameters()))
        return {"J_mean": 0.5, "F_mean": 0.5, "JF_mean": 0.5}

    monkeypatch.setattr(loop, "make_task", watched_task)
    train(tiny_config(tiny_videos, "train.steps=3", "train.val_every=2", "train.device=cpu"), tmp_path / "run",
          validate=validate)
    assert synced == [torch.device("cpu")] * 3  # once per step, before the timer stops
    assert grads_at_forward == [0, 0, 0] and grads_at_validation == [0, 0]


def test_deterministic_settings_apply_during_training_only():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    with deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        import os
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"]
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before


def test_processes_sharing_a_gpu_use_gloo(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert distributed.backend_for(torch.device("cuda", 0), 1) == "nccl"
    assert distributed.backend_for(torch.device("cuda", 0), 2) == "gloo"  # two ranks on one GPU
    assert distributed.backend_for(torch.device("cpu"), 1) == "gloo"
