"""Reading checkpoints: the file format, its safe loader, and the trained networks it holds.

A checkpoint is one `torch.save` file:

    {"format": "vcseg-checkpoint", "version": 2,
     "config": resolved config dict,
     "models": {"memory": packed state_dict},  # room for more models ("proposals") in one file
     "quantized": {"memory": {"q": packed int8 tensors, "scale": packed fp32 per channel}} or absent,
     "train": {"step", "optimizer", "scheduler", "scaler", "rng"} or absent}

A packed state dict (`pack_tensors`) is one uint8 tensor holding every tensor's bytes and a JSON
index of names, dtypes, shapes and offsets: torch's weights-only unpickler is a Python loop that
spends about 0.1 ms on each tensor it rebuilds, which made reading the default weights (1149
tensors) a tenth of a second of every `vcseg predict`'s start-up; one tensor and one string read
in a third of that, copies made. Version 1 files held plain state dicts ({name: tensor}) and still load.

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

import json
import math
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
VERSION = 2  # 2: state dicts packed (`pack_tensors`); 1: plain state dicts
PACK_ALIGNMENT = 64  # bytes: every tensor starts at a multiple, so a view of any dtype is aligned
# The dtypes a packed index may name (the index is data from a file: never a getattr on torch)
def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")  # "float16": how a packed index names it


_PACKED_DTYPES = {_dtype_name(dtype): dtype for dtype in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
    torch.int8, torch.uint8, torch.bool)}

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
    try:
        payload = unpack_payload(payload)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise VcsegError(f"{path}: damaged checkpoint ({_first_line(error) or type(error).__name__}); "
                         "export or train it again") from None
    for name, tensors in payload.pop("quantized", {}).items():
        payload["models"].setdefault(name, {}).update(
            {key: dequantize(entry["q"], entry["scale"]) for key, entry in tensors.items()})
    return payload


def unpack_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's payload with plain state dicts, as version 1 stored them: "models" {model:
    {name: tensor}}, "quantized" {model: {name: {"q", "scale"}}} (a version 1 payload as it is).
    ValueError (or KeyError, TypeError) for packed data that does not add up."""
    if payload.get("version", 0) < 2:
        return payload
    unpacked = dict(payload, models={name: unpack_tensors(packed) for name, packed in payload["models"].items()})
    if "quantized" in payload:
        unpacked["quantized"] = {name: _quantized_entries(unpack_tensors(entry["q"]), unpack_tensors(entry["scale"]))
                                 for name, entry in payload["quantized"].items()}
    return unpacked


def _quantized_entries(q: dict[str, torch.Tensor], scales: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    if set(q) != set(scales):
        raise ValueError("int8 weights and their scales name different tensors")
    return {key: {"q": q[key], "scale": scales[key]} for key in q}


def pack_tensors(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """`state` (CPU tensors) as {"index": JSON [[name, dtype, shape, offset], ...], "data": uint8
    tensor}: every tensor's bytes in one buffer, each starting at a multiple of PACK_ALIGNMENT."""
    index, chunks, offset = [], [], 0
    for name, tensor in state.items():
        dtype_name = _dtype_name(tensor.dtype)
        if dtype_name not in _PACKED_DTYPES:
            raise ValueError(f"{name}: dtype {tensor.dtype} cannot be packed")
        padding = -offset % PACK_ALIGNMENT
        if padding:
            chunks.append(torch.zeros(padding, dtype=torch.uint8))
            offset += padding
        data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        index.append([name, dtype_name, list(tensor.shape), offset])
        chunks.append(data)
        offset += data.numel()
    data = torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.uint8)
    return {"index": json.dumps(index), "data": data}


def unpack_tensors(packed: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict of `pack_tensors`, each tensor its own copy (views of one buffer as several
    dtypes could not be saved again by torch.save). ValueError for an index that does not fit its
    buffer."""
    data = packed["data"]
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8 or data.dim() != 1:
        raise ValueError("packed data is not a uint8 vector")
    state = {}
    for name, dtype_name, shape, offset in json.loads(packed["index"]):
        dtype = _PACKED_DTYPES[dtype_name]
        count = math.prod(shape) * dtype.itemsize
        if offset % PACK_ALIGNMENT or offset < 0 or offset + count > data.numel():
            raise ValueError(f"{name}: {count} bytes at offset {offset} do not fit the packed data "
                             f"({data.numel()} bytes, tensors at multiples of {PACK_ALIGNMENT})")
        state[name] = data[offset:offset + count].view(dtype).view(shape).clone()
    return state


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


def load_proposal_network(path: str | os.PathLike[str], state: dict[str, Any] | None = None
                          ) -> tuple[torch.nn.Module, Config]:
    """A trained person proposal network for inference (a checkpoint that holds one), in eval mode.
    state: `load_checkpoint(path)` where the caller has read it already."""
    from vcseg.model.proposals import build_proposal_model

    state = state if state is not None else load_checkpoint(path)
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
