"""Folding eval-mode batch norms into the convolutions before them, for prediction.

In eval mode a batch norm is a fixed per-channel affine map, so a convolution followed by one is
one convolution with scaled weights and a bias. Prediction folds the memory network's (its
encoders, EfficientNet-Lite or ResNets, have a batch norm after nearly every convolution):
measured on 2 CPU cores, batch norms took 13% of a no-mask prediction's time. Not the proposal
network's: exact in fp32, but under bf16 autocast its folded scores cost the no-mask demo set
0.643 -> 0.603 J&F (its thresholds on scores are sensitive to the rounding), for little time.

    folded = fold_batch_norms(model.encoder, torch.rand(1, 3, 64, 64))   # number of pairs folded

Which batch norm follows which convolution is not read from the code: one forward pass with hooks
records it (a batch norm whose input is the very tensor a convolution returned). A pair is folded
only where the batch norm is a plain `nn.BatchNorm2d`, or timm's norm + activation
(`BatchNormAct2d`, whose dropout and activation stay). The folded module must then compute what
it computed before on the example (else everything is put back and nothing is folded): a
convolution whose raw output is also used elsewhere would show there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Largest difference a fold may make, relative to the largest output magnitude: folding in float32
# moves results by rounding only (~1e-6); a wrong pair moves them by the size of the output.
FOLD_TOLERANCE = 1e-4


def fold_batch_norms(module: nn.Module, example: torch.Tensor | Sequence[torch.Tensor]) -> int:
    """Fold every (convolution, batch norm) pair of `module` in place; returns how many.

    module: in eval mode, float32 weights. example: its input (or inputs) for the discovery and
    check pass, any small size. Returns 0 and changes nothing where the folded module's output on
    `example` differs from the original's.
    """
    if module.training:
        raise ValueError("fold_batch_norms needs a module in eval mode (training batch norms use batch statistics)")
    inputs = (example,) if isinstance(example, torch.Tensor) else tuple(example)
    pairs, output = _conv_norm_pairs(module, inputs)
    if not pairs:
        return 0
    expected = _flat_outputs(output)
    parents = dict(module.named_modules())
    # what a failed check puts back: the batch norm in its parent, the convolution's weight and bias
    replaced: list[tuple[nn.Module, str, nn.Module, nn.Conv2d, torch.Tensor, torch.Tensor | None]] = []
    with torch.no_grad():
        for conv, norm_name in pairs:
            parent_name, _, child = norm_name.rpartition(".")
            parent = parents[parent_name]
            norm = getattr(parent, child)
            replaced.append((parent, child, norm, conv, conv.weight.data, conv.bias))
            _fold_into(conv, norm)
            setattr(parent, child, _after_norm(norm))
        if _matches(_flat_outputs(module(*inputs)), expected):
            return len(pairs)
        for parent, child, norm, conv, weight, bias in reversed(replaced):
            setattr(parent, child, norm)
            conv.weight.data, conv.bias = weight, bias
    return 0


def _conv_norm_pairs(module: nn.Module, inputs: tuple[torch.Tensor, ...]
                     ) -> tuple[list[tuple[nn.Conv2d, str]], object]:
    """(convolution, qualified name of the batch norm) for each batch norm fed by a convolution's
    output directly, each convolution at most once, found by running `module` on `inputs`; and
    that run's output (what the folded module must reproduce)."""
    # id of a convolution's output -> (the convolution, the output, held so that its id is not reused)
    outputs: dict[int, tuple[nn.Conv2d, torch.Tensor]] = {}
    pairs: dict[str, nn.Conv2d] = {}
    used: set[int] = set()
    handles = []

    def after_conv(conv: nn.Module, _inputs, output) -> None:
        outputs[id(output)] = (conv, output)

    def before_norm(name: str):
        def hook(_norm: nn.Module, args) -> None:
            conv, output = outputs.get(id(args[0]), (None, None)) if args else (None, None)
            if conv is not None and output is args[0] and id(conv) not in used and name not in pairs:
                pairs[name] = conv
                used.add(id(conv))
        return hook

    for name, child in module.named_modules():
        if isinstance(child, nn.Conv2d) and child.padding_mode == "zeros":
            handles.append(child.register_forward_hook(after_conv))
        elif _foldable(child) and name:
            handles.append(child.register_forward_pre_hook(before_norm(name)))
    try:
        with torch.no_grad():
            output = module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return [(conv, name) for name, conv in pairs.items()], output


def _foldable(norm: nn.Module) -> bool:
    """A batch norm with running statistics: plain, or timm's norm + activation (act, drop)."""
    if not isinstance(norm, nn.BatchNorm2d) or not norm.track_running_stats or norm.running_mean is None:
        return False
    return type(norm) is nn.BatchNorm2d or (hasattr(norm, "act") and hasattr(norm, "drop"))


def _fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    scale = torch.rsqrt(norm.running_var.float() + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.float()
    shift = -norm.running_mean.float() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.float()
    weight = conv.weight.float() * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    bias = shift if conv.bias is None else conv.bias.float() * scale + shift
    conv.weight.data = weight.to(conv.weight.dtype).contiguous(memory_format=_format_of(conv.weight))
    conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)


def _format_of(tensor: torch.Tensor) -> torch.memory_format:
    return (torch.channels_last if tensor.dim() == 4 and not tensor.is_contiguous()
            and tensor.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)


def _after_norm(norm: nn.BatchNorm2d) -> nn.Module:
    """What is left of the batch norm once folded: nothing, or timm's dropout and activation."""
    if type(norm) is nn.BatchNorm2d:
        return nn.Identity()
    return nn.Sequential(norm.drop, norm.act)


def _flat_outputs(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _flat_outputs(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in _flat_outputs(item)]
    return []


def _matches(folded: list[torch.Tensor], expected: list[torch.Tensor]) -> bool:
    if len(folded) != len(expected):
        return False
    for a, b in zip(folded, expected):
        if a.shape != b.shape:
            return False
        scale = b.abs().max().item() or 1.0
        if (a.float() - b.float()).abs().max().item() > FOLD_TOLERANCE * scale:
            return False
    return True
