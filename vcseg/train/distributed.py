"""DistributedDataParallel set-up from torchrun's environment, in a few visible lines.

Under `torchrun --nproc_per_node=G vcseg train ...` every process sees RANK, LOCAL_RANK and
WORLD_SIZE; without them training runs as a single process. Only rank 0 logs and writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from typing import Any

import torch
import torch.distributed as dist

from vcseg.model.devices import device_for_rank, use_device


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_master(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(requested_device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (nccl on GPUs, gloo on CPUs). Process
    LOCAL_RANK runs on GPU LOCAL_RANK % device_count under "auto" or "cuda" (two processes may
    share one GPU), made its current device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = use_device(device_for_rank(requested_device, local_rank, setting="train.device"))
    if world_size > 1 and not dist.is_initialized():
        local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
        dist.init_process_group(backend=backend_for(device, local_world_size))
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def backend_for(device: torch.device, local_world_size: int) -> str:
    """nccl when every local process has a GPU of its own; gloo on CPUs and where processes share
    a GPU (NCCL refuses two ranks on one device)."""
    if device.type == "cuda" and local_world_size <= torch.cuda.device_count():
        return "nccl"
    return "gloo"


def teardown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_across_processes(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of a scalar over all processes (for logging the same loss everywhere)."""
    if not info.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def any_process(flag: bool, info: DistInfo) -> bool:
    """True on every process when `flag` is true on any (an all_reduce MAX): all ranks decide the
    same, e.g. to stop at the same step after a Ctrl-C only some of them saw."""
    if not info.distributed:
        return flag
    value = torch.tensor([int(flag)], device=info.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_to_all(value: Any, info: DistInfo) -> list[Any]:
    """`value` of every process, by rank (picklable values: RNG states); a collective."""
    if not info.distributed:
        return [value]
    values: list[Any] = [None] * info.world_size
    dist.all_gather_object(values, value)
    return values


def seed_device_generators(seed: int, rank: int) -> None:
    """Seed this process's CUDA generator with seed + rank: ranks draw different dropout masks and
    random crops on the GPU (the CPU generator keeps `seed`, so every rank builds the same initial
    weights). Nothing happens without CUDA (the call is queued until CUDA initialises)."""
    torch.cuda.manual_seed(seed + rank)
