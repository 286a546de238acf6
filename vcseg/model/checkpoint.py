"""Reading checkpoints: the file format, its safe loader, and the trained networks it holds.

A checkpoint is one `torch.save` file:

    {"format": "vcseg-checkpoint", "version": 1,
     "config": resolved config dict,
     "models": {"memory": state_dict},        # room for more models ("proposals") in one file
     "quantized": {"memory": {name: {"q": int8, "scale": fp32 per channel}}} or absent,
     "train": {"step", "optimizer", "scheduler", "scaler", "rng"} or absent}

An exported checkpoint may store large weight tensors as int8 with one scale per output channel;
`load_checkpoint` turns them back into float tensors, so everything downstream sees ordinary
state dicts. Inference reads "config" and "models" only, so a checkpoint stripped of "train" (or a
training checkpoint) loads the same way. Writing checkpoints (training state, export,
quantization) is training's business: `vcseg.train.checkpoint`.

A checkpoint holds plain values only (tensors, numbers, strings, lists, tuples, dicts), so it is
read with `torch.load(weights_only=True)`: a `.pt` file is a pickle, and unpickling anything else
can run code. The one exception is the numpy RNG state of checkpoints written before that rule,
a uint32 numpy array: the numpy globals that array needs are allowed and nothing more. Anything
else is refused with one line naming what the file holds.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vcseg.config import Config
from vcseg.errors import VcsegError

if TYPE_CHECKING:  # the networks are imported when one is loaded: reading a checkpoint (export,
    # resume) needs no backbone library
    from vcseg.model.network import MemoryNetwork

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 1.26
    from numpy.core.multiarray import _reconstruct

FORMAT = "vcseg-checkpoint"
VERSION = 1

# What older checkpoints need beyond plain values: their numpy RNG state is a pickled uint32 array.
# numpy 2 names the array reconstructor numpy._core.multiarray._reconstruct, numpy 1 numpy.core...;
# both names are allowed so a checkpoint loads whichever numpy wrote it. (Named entries need torch >= 2.6.)
_LEGACY_NUMPY_GLOBALS = [np.ndarray, np.dtype, type(np.dtype(np.uint32)),
                         (_reconstruct, "numpy._core.multiarray._reconstruct"),
                         (_reconstruct, "numpy.core.multiarray._reconstruct")]
# How torch's weights-only unpickler names what it refused: a global, or a class it will not build.
_REFUSED = re.compile(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>")


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint on the CPU; VcsegError naming the file if it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise VcsegError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(_LEGACY_NUMPY_GLOBALS):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower():  # not a refusal: a damaged file
            raise VcsegError(f"{path}: cannot read checkpoint ({_first_line(error)}); it may be truncated") from None
        found = _REFUSED.search(str(error))
        what = next(name for name in found.groups() if name) if found else "a pickled object"
        raise VcsegError(f"{path}: refused to load: it holds {what} which a vcseg checkpoint never contains; "
                         "it is not a vcseg checkpoint, or was tampered with (loading it could run code)") from None
    except Exception as error:
        raise VcsegError(f"{path}: cannot read checkpoint ({_first_line(error)}); it may be truncated") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise VcsegError(f"{path}: not a vcseg checkpoint (no '{FORMAT}' header)")
    if payload.get("version", 0) > VERSION:
        raise VcsegError(f"{path}: checkpoint version {payload['version']} is newer than this vcseg "
                         f"({VERSION}); upgrade vcseg")
    for name, tensors in payload.pop("quantized", {}).items():
        payload["models"].setdefault(name, {}).update(
            {key: dequantize(entry["q"], entry["scale"]) for key, entry in tensors.items()})
    return payload


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Float weights from int8 `q` and one scale per output channel (dim 0)."""
    return (q.float().reshape(q.shape[0], -1) * scale[:, None]).reshape(q.shape)


def load_memory_network(path: str | os.PathLike[str]) -> tuple[MemoryNetwork, Config]:
    """A trained memory network for inference (any vcseg checkpoint that holds one), in eval mode."""
    from vcseg.model.network import build_model

    state = load_checkpoint(path)
    if "memory" not in state["models"]:
        raise VcsegError(f"{path}: this checkpoint holds no memory network (models: {list(state['models'])})")
    config = Config.from_dict(state["config"], source=str(path))
    model = build_model(_trained(config.model, "model.encoder_weights"))
    model.load_state_dict(state["models"]["memory"])
    return model.eval(), config


def load_proposal_network(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, Config]:
    """A trained person proposal network for inference (a checkpoint that holds one), in eval mode."""
    from vcseg.model.proposals import build_proposal_model

    state = load_checkpoint(path)
    if "proposals" not in state["models"]:
        raise VcsegError(f"{path}: this checkpoint holds no proposal network (models: {list(state['models'])}); "
                         "train one with `vcseg train --task proposals` and combine with `vcseg export`")
    config = Config.from_dict(state["config"], source=str(path))
    model = build_proposal_model(_trained(config.proposals, "proposals.encoder_weights"))
    model.load_state_dict(state["models"]["proposals"])
    return model.eval(), config


def _trained(section: Any, setting: str) -> Any:
    """A checkpoint's model config to build its network from: the input normalisation it was trained
    with (ImageNet's for checkpoints that predate `input_mean` / `input_std`), and no encoder weights
    to load, since the checkpoint's state dict replaces them (nothing downloaded at inference)."""
    from vcseg.model.pretrained import with_input_normalisation

    return without_encoder_weights(with_input_normalisation(section, setting))


def without_encoder_weights(section: Any) -> Any:
    """A model config with no encoder weights to load (query, and value encoder where it has one):
    for networks whose weights a checkpoint then replaces."""
    changes = {name: None for name in ("encoder_weights", "value_encoder_weights") if hasattr(section, name)}
    return replace(section, **changes)
