"""Which device a process runs on: one mapping of torchrun's LOCAL_RANK to a GPU, shared by
training (`train.device`) and prediction (`--device`).

Under torchrun with more processes than visible GPUs (two on one GPU, say) process LOCAL_RANK
shares GPU `LOCAL_RANK % device_count`, so "auto" and a bare "cuda" never ask for a GPU that is
not there; "cuda:N" is taken as written.
"""

from __future__ import annotations

import os

import torch

from vcseg.errors import VcsegError


def local_rank() -> int:
    """This process's LOCAL_RANK under torchrun, 0 without it."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def device_for_rank(requested: str, rank: int | None = None, setting: str = "--device") -> torch.device:
    """The device of local process `rank` (LOCAL_RANK when None) for `requested`.

    "auto": GPU rank % device_count when CUDA is visible, else the CPU; "cuda": that same GPU (a
    VcsegError without CUDA); "cpu", "cuda:N" and other torch device names as written. `setting`
    names the option in error messages ("--device", "train.device").
    """
    rank = local_rank() if rank is None else rank
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise VcsegError(f"{setting} {requested!r} is not a device name; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise VcsegError(f"{setting} {requested} but no CUDA device is visible; use cpu or auto")
        if device.index is None:
            device = torch.device("cuda", rank % torch.cuda.device_count())
    return device


def use_device(device: torch.device) -> torch.device:
    """Make `device` this process's current CUDA device (so kernels, NCCL and `torch.cuda` calls
    without a device go to it); nothing for other devices. Returns `device`."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (CUDA runs asynchronously); nothing elsewhere. Timers
    call it before they stop, so a step's time includes the GPU's."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
