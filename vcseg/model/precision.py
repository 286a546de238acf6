"""Which precision a model runs in on a device: the autocast dtype for a `precision` setting.

Shared by training (`train.precision`) and prediction (`--precision`), so both pick the same.
"""

from __future__ import annotations

import warnings

import torch


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has fast bf16 kernels for this CPU (AVX512 and later: AVX512-BF16, AMX).

    Without them bf16 autocast is emulated: a resnet18 proposal-network training step took 15 s
    instead of 0.9 s in fp32 on an AVX2 CPU (batch 8, 192x320), so "auto" picks bf16 only where
    it pays.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: no fast bf16 either
        return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`, None for plain fp32.

    "auto" is bf16 on CUDA GPUs and CPUs that support it natively (Ampere and later; not V100 or
    T4, where bf16 is emulated), fp32 elsewhere. An explicit
    "bf16" on a CPU without native bf16 is honoured with a warning: it is many times slower there.
    """
    native_bf16 = (torch.cuda.is_bf16_supported(including_emulation=False) if device.type == "cuda"
                   else device.type == "cpu" and cpu_has_native_bf16())
    if precision == "auto":
        precision = "bf16" if native_bf16 else "fp32"
    elif precision == "bf16" and device.type == "cpu" and not native_bf16:
        warnings.warn("precision bf16 on a CPU without native bf16 (no AVX512-BF16 or AMX): emulated, many "
                      "times slower than fp32; use precision \"auto\" or \"fp32\" on this machine", stacklevel=2)
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
