"""Writing checkpoints: everything needed to resume training exactly, or an inference checkpoint.

The format, and reading it back (`load_checkpoint`, which also restores int8 weights), live in
`vcseg.model.checkpoint`, below both training and inference. Here: the training state (RNG
states), atomic saves, and `export_weights`, which strips the training state and may store large
weight tensors as int8 with one scale per output channel (`export_weights(precision="int8")`).
Files are written atomically: a crash mid-save keeps the previous checkpoint intact.

A checkpoint holds plain values only (tensors, numbers, strings, lists, tuples, dicts), so that it
is read with `torch.load(weights_only=True)`: `rng_state` turns the numpy state into a tensor.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vcseg.errors import VcsegError
from vcseg.io.atomic import atomic_path
from vcseg.model.checkpoint import FORMAT, VERSION, load_checkpoint, pack_tensors


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """The state of every random generator training touches (python, numpy, torch, and the CUDA
    generator of `device` when it is a GPU), as plain values: the numpy key array becomes an int64
    tensor so the checkpoint needs no numpy to load.

    One process's state: under torchrun the checkpoint holds every rank's (`rng_states` in
    `vcseg.train.loop`), each restored by its own rank."""
    kind, key, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    numpy_state = (kind, torch.from_numpy(key.astype(np.int64)), int(position), int(has_gauss),
                   float(cached_gaussian))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore `rng_state()`; the CUDA state goes to `device`'s generator.

    Also reads older checkpoints: a numpy key as a numpy array, and "cuda" as the list of every
    GPU's state (`get_rng_state_all`), of which `device`'s entry is restored. A CUDA state that
    has no GPU to go to here (resumed on the CPU or on fewer GPUs) is skipped with a warning: the
    run goes on, its GPU random numbers no longer those of an uninterrupted run.
    """
    random.setstate(state["python"])
    kind, key, position, has_gauss, cached_gaussian = state["numpy"]
    key = np.asarray(key.numpy() if isinstance(key, torch.Tensor) else key).astype(np.uint32)
    np.random.set_state((kind, key, position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is None:
        return
    if isinstance(cuda, (list, tuple)):  # older checkpoints: every GPU's state, GPU i at [i]
        index = device.index if device is not None and device.type == "cuda" and device.index is not None else 0
        cuda = cuda[index] if device is not None and device.type == "cuda" and index < len(cuda) else None
    if cuda is None or device is None or device.type != "cuda":
        warnings.warn(f"the checkpoint's CUDA random state has no GPU to go to on {device or 'this process'}: "
                      "resuming without it, so GPU random numbers differ from an uninterrupted run", stacklevel=2)
        return
    torch.cuda.set_rng_state(cuda, device)


def save_checkpoint(path: str | os.PathLike[str], *, config: dict[str, Any],
                    models: dict[str, dict[str, torch.Tensor]], train: dict[str, Any] | None = None,
                    quantized: dict[str, dict[str, dict[str, torch.Tensor]]] | None = None) -> Path:
    """Write a checkpoint atomically and return its path: every state dict packed (`pack_tensors`),
    `quantized` as {model: {name: {"q": int8, "scale": per channel}}}."""
    payload: dict[str, Any] = {"format": FORMAT, "version": VERSION, "config": config,
                               "models": {name: pack_tensors(state) for name, state in models.items()}}
    if train is not None:
        payload["train"] = train
    if quantized:
        payload["quantized"] = {name: {part: pack_tensors({key: entry[part] for key, entry in tensors.items()})
                                       for part in ("q", "scale")} for name, tensors in quantized.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


QUANTIZE_MIN_ELEMENTS = 1024  # small tensors (biases, norms) stay in floating point


def quantize(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """Symmetric int8 with one scale per output channel (dim 0): |error| <= scale / 2."""
    flat = weight.detach().float().reshape(weight.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp(min=1e-12) / 127.0  # C
    q = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return {"q": q.reshape(weight.shape), "scale": scale}


def export_weights(out: str | os.PathLike[str], memory: str | os.PathLike[str] | None = None,
                   proposals: str | os.PathLike[str] | None = None, precision: str = "fp16") -> Path:
    """One inference checkpoint from training checkpoints: no optimizer or RNG state, the memory
    network and/or the proposal network side by side.

    precision: "fp32" as trained; "fp16" (half the size); "int8": weight tensors of at least
    QUANTIZE_MIN_ELEMENTS values as int8 with a scale per output channel, the rest fp16 (a
    quarter of the size; `load_checkpoint` restores float tensors). The config is the memory run's,
    with the proposal run's `proposals` section when both are given.
    """
    if precision not in ("fp32", "fp16", "int8"):
        raise VcsegError(f"precision {precision!r} is unknown; choose fp32, fp16 or int8")
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
    quantized: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    if precision == "int8":
        for name, state in models.items():
            big = {key for key, value in state.items()
                   if value.is_floating_point() and value.dim() >= 2 and value.numel() >= QUANTIZE_MIN_ELEMENTS}
            quantized[name] = {key: quantize(state[key]) for key in sorted(big)}
            models[name] = {key: value for key, value in state.items() if key not in big}
    if precision in ("fp16", "int8"):
        models = {name: {key: value.half() if value.is_floating_point() else value for key, value in state.items()}
                  for name, state in models.items()}
    return save_checkpoint(out, config=config, models=models, quantized=quantized)
