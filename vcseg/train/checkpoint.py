"""Checkpoints: everything needed to resume training exactly, or to run inference alone.

A checkpoint is one `torch.save` file:

    {"format": "vcseg-checkpoint", "version": 1,
     "config": resolved config dict,
     "models": {"memory": state_dict},        # room for more models ("proposals") in one file
     "train": {"step", "optimizer", "scheduler", "scaler", "rng"} or absent}

Inference reads "config" and "models" only, so a checkpoint stripped of "train" (or a training
checkpoint) loads the same way. Files are written atomically: a crash mid-save keeps the previous
checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vcseg.errors import VcsegError
from vcseg.io.atomic import atomic_path

FORMAT = "vcseg-checkpoint"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """The state of every random generator training touches (python, numpy, torch, cuda)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike[str], *, config: dict[str, Any],
                    models: dict[str, dict[str, torch.Tensor]], train: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically and return its path."""
    payload: dict[str, Any] = {"format": FORMAT, "version": VERSION, "config": config,
                               "models": {name: {k: v.detach().cpu() for k, v in state.items()}
                                          for name, state in models.items()}}
    if train is not None:
        payload["train"] = train
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint on the CPU; VcsegError naming the file if it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise VcsegError(f"{path}: checkpoint not found")
    try:
        # weights_only=False: the file holds RNG states and the config, written by vcseg itself
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise VcsegError(f"{path}: cannot read checkpoint ({error}); it may be truncated") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise VcsegError(f"{path}: not a vcseg checkpoint (no '{FORMAT}' header)")
    if payload.get("version", 0) > VERSION:
        raise VcsegError(f"{path}: checkpoint version {payload['version']} is newer than this vcseg "
                         f"({VERSION}); upgrade vcseg")
    return payload


def export_weights(out: str | os.PathLike[str], memory: str | os.PathLike[str] | None = None,
                   proposals: str | os.PathLike[str] | None = None, half: bool = True) -> Path:
    """One inference checkpoint from training checkpoints: no optimizer or RNG state, the memory
    network and/or the proposal network side by side, weights in fp16 when `half` (they load into
    fp32 models unchanged in shape; the rounding is far below what the models resolve).

    The config is the memory run's, with the proposal run's `proposals` section when both are given.
    """
    if memory is None and proposals is None:
        raise VcsegError("export needs --memory CKPT and/or --proposals CKPT")
    models: dict[str, dict[str, torch.Tensor]] = {}
    config: dict[str, Any] | None = None
    for name, path in (("memory", memory), ("proposals", proposals)):
        if path is None:
            continue
        payload = load_checkpoint(path)
        if name not in payload["models"]:
            raise VcsegError(f"{path}: holds no {name} model (it has: {', '.join(payload['models'])})")
        models[name] = payload["models"][name]
        if config is None:
            config = dict(payload["config"])
        elif "proposals" in payload["config"]:
            config["proposals"] = payload["config"]["proposals"]
    if half:
        models = {name: {key: value.half() if value.is_floating_point() else value for key, value in state.items()}
                  for name, state in models.items()}
    return save_checkpoint(out, config=config, models=models)
