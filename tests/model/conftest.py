"""Tiny memory-network configurations and clips for CPU tests, and a crafted (malicious) checkpoint."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import torch

from vcseg.config import ModelConfig


def random_state(state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """`state` with random weights and batch-norm statistics (a fresh network's would make every
    batch norm an identity and hide a wrong one); integer counters kept."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value
        elif key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=generator) + 0.5
        else:
            out[key] = torch.randn(value.shape, generator=generator) * 0.2
    return out


def tiny_config(**changes) -> ModelConfig:
    """resnet18 query encoder, small key/value/decoder widths: a model that runs in milliseconds."""
    settings = dict(encoder="resnet18", value_encoder="resnet18", key_dim=16, value_dim=32,
                    decoder_dim=16, aspp_rates=(1, 2), read_chunk=5)
    settings.update(changes)
    return ModelConfig(**settings)


def two_squares(frames: int = 3, size: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip with a red and a blue square moving over noise: (1, T, 3, S, S) frames, (T, S, S) ids."""
    generator = torch.Generator().manual_seed(seed)
    clip = 0.3 + 0.2 * torch.rand(1, frames, 3, size, size, generator=generator)
    ids = torch.zeros(frames, size, size, dtype=torch.long)
    side = size // 4
    colours = {1: torch.tensor([0.9, 0.1, 0.1]), 2: torch.tensor([0.1, 0.2, 0.9])}
    for t in range(frames):
        corners = {1: (2 + 2 * t, 3 + t), 2: (size - side - 3 - t, size - side - 2 - 2 * t)}
        for object_id, (top, left) in corners.items():
            ids[t, top:top + side, left:left + side] = object_id
            clip[0, t, :, top:top + side, left:left + side] = colours[object_id][:, None, None]
    return clip, ids


@pytest.fixture
def clip() -> tuple[torch.Tensor, torch.Tensor]:
    return two_squares()


class _RunsAShellCommand:
    """Pickles as a call to os.system: what a crafted .pt file can do to a pickle loader."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    """A file with a vcseg header whose unpickling would create `marker` (it runs a shell command)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "vcseg-checkpoint", "version": 1, "config": {}, "models": {},
                "train": {"step": 1, "rng": _RunsAShellCommand(marker)}}, path)
    return path
