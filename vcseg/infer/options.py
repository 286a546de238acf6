"""How to predict: input size, memory bounds, test-time augmentation, device, precision, shard."""

from __future__ import annotations

from dataclasses import dataclass


from vcseg.config import PRECISIONS
from vcseg.errors import VcsegError
from vcseg.infer.output import parse_shard  # noqa: F401  (kept importable from here)


@dataclass(frozen=True)
class PredictOptions:
    """Settings of `predict_video` / `predict_dataset` (the `vcseg predict` options).

    size: short side of the network input for scale 1.0 (frames are resized, then padded to 16).
    mem_every: every mem_every-th frame joins the working memory, which holds at most mem_size.
    top_k: memory read over the k most similar positions; None = the model's config.top_k.
    scales / flip: test-time augmentation; each (model, scale, flip) runs its own engine and the
        probability maps are averaged at the frame's own size.
    precision: "auto" (bf16 autocast on CUDA GPUs and CPUs with native bf16, fp32 otherwise), fp32, bf16, fp16.
    device: "auto" (CUDA when present, else the CPU; loaded models: where they already are), or a
        torch device name.
    max_objects: most objects tracked at once (None: the model's config.max_objects); the
        unsupervised path raises it to follow more candidate tracks than it finally keeps.
    upsample: let `size` exceed a frame's own short side (by default a 240-line video is
        processed at 240 whatever `size` says: four times the pixels would add no information).
    previous_in_memory: write every frame's value into the memory as a temporary entry read by
        the next frame (STM, the default), or only the frames that join the memory (STCN; the
        previous frame still reaches the decoder through its mask, the spatial constraint). With
        the default weights on the held-out real DAVIS sequences at 320 on 2 CPU cores STCN's way
        ran about 1.4x the frames/s but scored J&F 0.646 against 0.756: the weights lean on the
        previous frame's value, so STM stays the default
        (`python -m benchmarks.run predict`).
    cuda_graphs: on a CUDA device, replay each frame's key encoding from a CUDA graph
        (`vcseg.infer.graphs`): the same values in fewer launches. Not part of a run's fingerprint,
        since it changes no mask.
    """

    size: int = 480
    mem_every: int = 5
    mem_size: int = 8
    top_k: int | None = None
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    precision: str = "auto"
    device: str = "auto"
    max_objects: int | None = None
    previous_in_memory: bool = True
    upsample: bool = False
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        if self.size < 16:
            raise VcsegError(f"--size must be at least 16 pixels (got {self.size})")
        if self.mem_every < 1 or self.mem_size < 1:
            raise VcsegError(f"--mem-every and --mem-size must be at least 1 (got {self.mem_every}, {self.mem_size})")
        if self.top_k is not None and self.top_k < 0:
            raise VcsegError(f"--top-k must be >= 0, 0 meaning all positions (got {self.top_k})")
        if not self.scales or any(scale <= 0 for scale in self.scales):
            raise VcsegError(f"--scales must be positive numbers, e.g. 0.75,1.0,1.25 (got {list(self.scales)})")
        if any(round(self.size * scale) < 16 for scale in self.scales):
            raise VcsegError(f"--scales {list(self.scales)} at --size {self.size} make a short side under 16 pixels")
        if self.precision not in PRECISIONS:
            raise VcsegError(f"--precision {self.precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")

    def network_short_side(self, height: int, width: int) -> int:
        """The short side a frame of `height` x `width` is processed at for scale 1.0: `size`,
        but never above the frame's own unless `upsample`."""
        return self.size if self.upsample else min(self.size, height, width)

    @property
    def augmentations(self) -> list[tuple[float, bool]]:
        """(scale, flipped) of every engine run per model."""
        return [(scale, flipped) for scale in self.scales for flipped in ((False, True) if self.flip else (False,))]


def parse_scales(text: str) -> tuple[float, ...]:
    """'0.75,1.0,1.25' -> (0.75, 1.0, 1.25)."""
    try:
        scales = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise VcsegError(f"--scales {text!r}: write comma-separated numbers, e.g. 0.75,1.0,1.25") from None
    if not scales:
        raise VcsegError("--scales needs at least one scale, e.g. 1.0")
    return scales
