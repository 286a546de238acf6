"""Tiny random-weight memory networks (and a perfect-copy stub) for CPU inference tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vcseg.config import Config, ModelConfig
from vcseg.model.network import MemoryNetwork
from vcseg.train.checkpoint import save_checkpoint

TINY = ModelConfig(encoder="resnet18", value_encoder="resnet18", key_dim=16, value_dim=32, decoder_dim=32,
                   aspp_rates=(1, 2))


@pytest.fixture(autouse=True)
def cpu_fp32(monkeypatch):
    """The inference tests check CPU fp32 results: "auto" device and precision resolve to the CPU
    and fp32 here even on a machine with a GPU or a CPU with native bf16 (the GPU paths have their
    own tests, tests/gpu, run by `make gpu-check`)."""
    from vcseg.model import precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)


def tiny_model(seed: int = 0) -> MemoryNetwork:
    torch.manual_seed(seed)
    return MemoryNetwork(TINY).eval()


class CopyModel(MemoryNetwork):
    """A memory network whose segmentation is the previous mask, hardened at 0.5: a perfect copy.

    Its output depends on nothing but the previous mask, so any scale or flip of the input gives
    the given masks back (up to the resampling of the masks themselves).
    """

    def segment(self, readout, features, prev_masks=None, valid=None):
        scores = torch.cat([torch.full_like(prev_masks[:, :1], 0.5), prev_masks.float()], dim=1)  # B, K+1, H, W
        probs = F.one_hot(scores.argmax(dim=1), scores.shape[1]).permute(0, 3, 1, 2).float()
        return probs.clamp(min=1e-12).log(), probs


def copy_model() -> CopyModel:
    torch.manual_seed(0)
    return CopyModel(TINY).eval()


def save_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    model = tiny_model(seed)
    return save_checkpoint(path, config=Config(model=TINY).to_dict(), models={"memory": model.state_dict()})


def random_frames(count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def two_boxes(height: int, width: int, ids: tuple[int, int] = (1, 2)) -> np.ndarray:
    """An id mask with two rectangles, placed by fractions of the size."""
    mask = np.zeros((height, width), np.uint8)
    mask[height // 9:height // 2, width // 20:width // 3] = ids[0]
    mask[height * 4 // 9:height * 8 // 9, width // 2:width * 9 // 10] = ids[1]
    return mask


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors run fastest on one thread; on a busy machine OpenMP's spinning threads make
    them up to 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return save_tiny_checkpoint(tmp_path / "tiny.pt")
