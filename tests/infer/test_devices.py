"""`vcseg predict --device` under torchrun: each rank on its own GPU, made current."""

from __future__ import annotations

import pytest
import torch

from tests.infer.conftest import tiny_model
from vcseg.infer.models import prediction_device


@pytest.fixture
def two_gpus(monkeypatch):
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    return current


@pytest.mark.parametrize(("requested", "local_rank", "gpu"), [("cuda", 0, 0), ("cuda", 1, 1), ("cuda", 3, 1),
                                                               ("auto", 2, 0), ("cuda:0", 1, 0)])
def test_each_rank_predicts_on_its_own_gpu(two_gpus, monkeypatch, requested, local_rank, gpu):
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    assert prediction_device(requested) == torch.device("cuda", gpu)
    assert two_gpus == [torch.device("cuda", gpu)]  # torch.cuda.set_device called


def test_loaded_models_stay_where_they_are_under_auto(two_gpus, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert prediction_device("auto", [tiny_model()]) == torch.device("cpu")
    assert prediction_device("cpu") == torch.device("cpu")
    assert two_gpus == []
