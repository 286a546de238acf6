"""Which models predict: checkpoints from disk (or the default weights), or models already loaded."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from vcseg.errors import VcsegError
from vcseg.infer.options import PredictOptions
from vcseg.model.checkpoint import load_memory_network
from vcseg.model.devices import device_for_rank, use_device
from vcseg.model.network import MemoryNetwork
from vcseg.model.precision import autocast_dtype

DEFAULT_WEIGHTS_ENV = "VCSEG_WEIGHTS"
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "default.pt"  # beside the package

ModelSource = MemoryNetwork | str | os.PathLike


def default_weights_candidates() -> list[Path]:
    """Where the default weights are looked for, in order: $VCSEG_WEIGHTS, the checkout the
    package runs from (so any working folder finds them), then ./weights/default.pt."""
    candidates = [Path(os.environ[DEFAULT_WEIGHTS_ENV])] if os.environ.get(DEFAULT_WEIGHTS_ENV) else []
    return candidates + [DEFAULT_WEIGHTS, Path("weights") / "default.pt"]


def resolve_checkpoints(checkpoints: Sequence[ModelSource]) -> list[ModelSource]:
    """The given checkpoints/models, or the default weights when none is given and they exist."""
    if checkpoints:
        return list(checkpoints)
    if os.environ.get(DEFAULT_WEIGHTS_ENV) and not Path(os.environ[DEFAULT_WEIGHTS_ENV]).is_file():
        raise VcsegError(f"{os.environ[DEFAULT_WEIGHTS_ENV]}: no such checkpoint (from ${DEFAULT_WEIGHTS_ENV}); "
                         "fix the variable or unset it")
    candidates = default_weights_candidates()
    for path in candidates:
        if path.is_file():
            return [path]
    raise VcsegError(f"no --checkpoint given and no default weights (looked in {', '.join(map(str, candidates))}); "
                     f"set {DEFAULT_WEIGHTS_ENV}=PATH, or train a model (`make weights`, or `vcseg train --config "
                     "configs/demo.toml --out runs/demo`) and pass --checkpoint runs/demo/checkpoints/last.pt")


def prediction_device(requested: str, given: Sequence[MemoryNetwork] = ()) -> torch.device:
    """The device prediction runs on, made current: where `given` models already are under "auto",
    else `device_for_rank` (under torchrun "auto" and "cuda" put each process on GPU
    LOCAL_RANK % device_count)."""
    if requested == "auto" and given:
        return use_device(next(given[0].parameters()).device)
    return use_device(device_for_rank(requested, setting="--device"))


@contextlib.contextmanager
def inference_models(sources: Sequence[ModelSource], options: PredictOptions
                     ) -> Iterator[tuple[list[MemoryNetwork], torch.device, torch.dtype | None]]:
    """Models ready to predict: (models in eval mode, device, autocast dtype or None), under
    `torch.inference_mode`.

    Paths are loaded onto the device. Loaded models (validation during training) stay where they
    are under device "auto" and get their train/eval mode back on exit.
    """
    sources = resolve_checkpoints(sources)
    device = prediction_device(options.device, [source for source in sources if isinstance(source, MemoryNetwork)])
    # Models loaded here are prediction's own: made faster for it, same masks (`for_prediction`).
    models = [source if isinstance(source, MemoryNetwork) else load_memory_network(Path(source))[0].for_prediction()
              for source in sources]
    was_training = [model.training for model in models]
    try:
        for model in models:
            model.to(device).eval()
        with torch.inference_mode():
            yield models, device, autocast_dtype(options.precision, device)
    finally:
        for model, training in zip(models, was_training):
            model.train(training)
