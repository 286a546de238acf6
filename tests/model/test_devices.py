"""Process -> device mapping (shared by training and prediction), with `torch.cuda` patched."""

from __future__ import annotations

import pytest
import torch

from vcseg.errors import VcsegError
from vcseg.model.devices import device_for_rank, synchronize, use_device


@pytest.fixture
def gpus(monkeypatch):
    def set_count(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    return set_count


@pytest.mark.parametrize("requested", ["auto", "cuda"])
def test_more_processes_than_gpus_share_them_round_robin(gpus, requested):
    gpus(1)
    assert [device_for_rank(requested, rank) for rank in range(3)] == [torch.device("cuda", 0)] * 3
    gpus(2)
    assert [device_for_rank(requested, rank).index for rank in range(4)] == [0, 1, 0, 1]


def test_local_rank_comes_from_torchrun(gpus, monkeypatch):
    gpus(2)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert device_for_rank("cuda") == torch.device("cuda", 1)
    assert device_for_rank("cuda:0") == torch.device("cuda", 0)  # an explicit GPU as written
    assert device_for_rank("cpu") == torch.device("cpu")


def test_without_cuda(gpus):
    gpus(0)
    assert device_for_rank("auto", 1) == torch.device("cpu")
    with pytest.raises(VcsegError, match="train.device cuda but no CUDA"):
        device_for_rank("cuda", 0, setting="train.device")
    with pytest.raises(VcsegError, match="not a device name"):
        device_for_rank("gpu0", 0)


def test_use_device_and_synchronize_touch_cuda_only_for_cuda(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set", device)))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("sync", device)))
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 1)
    use_device(cpu)
    synchronize(cpu)
    assert calls == []
    assert use_device(gpu) == gpu
    synchronize(gpu)
    assert calls == [("set", gpu), ("sync", gpu)]
