"""Person proposals from the proposal network's maps: centre peaks, offset grouping, instances.

Panoptic-DeepLab's post-processing (Cheng et al., CVPR 2020), as pure functions of tensors:

1. `find_centres`: peaks of the centre heatmap by max-pool non-maximum suppression (a pixel is a
   peak when it equals the maximum of its `nms_kernel` window and exceeds `centre_threshold`),
   the `top_k` highest kept;
2. `resample_maps`: the maps, made at output stride s over a resized and padded frame, are
   brought to the original frame's size (bilinear; offsets rescaled to the new pixels);
3. `group_pixels`: every foreground pixel (probability > `foreground_threshold`) joins the
   centre nearest to where its offset points;
4. `postprocess`: groups of at least `min_area` pixels become `Proposal`s, sorted by score.

A proposal's score is the centre heatmap value at its peak times the mean foreground
probability over its mask: high when the network is sure there is a person centre there and that
the pixels assigned to it are person.

Coordinates: output pixel i covers input pixels s*i .. s*i + s - 1, its centre at s*i + (s-1)/2
(bilinear upsampling with align_corners=False agrees); the content (the resized frame, without
padding) occupies the top-left (hc, wc) of the input; it is resized to the target (H, W) by the
same convention: y_target = (y_content + 0.5) * H / hc - 0.5.

`predict_proposals(model, frame, size)` runs the whole chain on one uint8 frame;
`merge_proposals` joins the proposals of one frame found at several input sizes (multi-scale
test), each person once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vcseg.data.cache import resize_frame, scaled_size
from vcseg.io.frames import IMAGENET_MEAN_RGB
from vcseg.model.proposals import INPUT_MULTIPLE, ProposalConfig

@dataclass(frozen=True)
class Proposal:
    """One person found in a frame.

    mask: (H, W) bool at the requested size; score: centre value x mean foreground probability
    (0..1); centre: (y, x) of the centre peak in that frame's pixels; area: pixels in mask.
    """

    mask: np.ndarray
    score: float
    centre: tuple[float, float]
    area: int


def find_centres(heatmap: torch.Tensor, threshold: float = 0.1, nms_kernel: int = 7,
                 top_k: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaks of an (h, w) heatmap in [0, 1] -> (N, 2) int64 (y, x) and their (N,) values, highest first.

    A pixel is a peak when it is the maximum of the nms_kernel x nms_kernel window around it and
    above `threshold`; at most `top_k` are kept. Two equal neighbouring maxima both survive (as in
    Panoptic-DeepLab): the heatmap of a trained network has no exact plateaus.
    """
    if nms_kernel < 1 or nms_kernel % 2 == 0:
        raise ValueError(f"nms_kernel must be odd and positive (got {nms_kernel})")
    heat = heatmap.float()[None, None]  # 1, 1, h, w
    pooled = F.max_pool2d(heat, nms_kernel, stride=1, padding=nms_kernel // 2)
    peaks = (heat == pooled) & (heat > threshold)
    ys, xs = torch.nonzero(peaks[0, 0], as_tuple=True)
    values = heat[0, 0, ys, xs]
    order = torch.argsort(values, descending=True, stable=True)[:top_k]
    return torch.stack([ys[order], xs[order]], dim=1), values[order]


def group_pixels(foreground: torch.Tensor, offsets: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Assign foreground pixels to centres -> (H, W) int64 labels, 0 = background, k = centres[k-1].

    foreground: (H, W) bool; offsets: (2, H, W) (dy, dx) in pixels; centres: (N, 2) (y, x), float
    or int, in the same pixels. A pixel (y, x) goes to the centre nearest to (y + dy, x + dx)
    (the first of equally near ones).
    """
    height, width = foreground.shape
    labels = torch.zeros((height, width), dtype=torch.int64, device=foreground.device)
    if len(centres) == 0:
        return labels
    rows = torch.arange(height, dtype=torch.float32, device=foreground.device)[:, None]
    cols = torch.arange(width, dtype=torch.float32, device=foreground.device)[None, :]
    pointed_y, pointed_x = rows + offsets[0].float(), cols + offsets[1].float()  # H, W each
    # one centre at a time keeps memory at a few H x W maps whatever the number of centres
    nearest = torch.full((height, width), float("inf"), device=foreground.device)
    for k, (centre_y, centre_x) in enumerate(centres.float().tolist()):
        distance = (pointed_y - centre_y).square_().add_((pointed_x - centre_x).square_())
        closer = distance < nearest
        nearest = torch.where(closer, distance, nearest)
        labels = torch.where(closer, k + 1, labels)
    return torch.where(foreground, labels, 0)


def to_target_coordinates(points: torch.Tensor, stride: int, content_size: tuple[int, int],
                          target_size: tuple[int, int]) -> torch.Tensor:
    """(N, 2) (y, x) in output pixels -> (N, 2) float (y, x) in target pixels (module docstring)."""
    scale = torch.tensor([target_size[0] / content_size[0], target_size[1] / content_size[1]])
    content = points.float() * stride + (stride - 1) / 2
    return (content + 0.5) * scale - 0.5


def resample_maps(foreground: torch.Tensor, offsets: torch.Tensor, stride: int,
                  content_size: tuple[int, int], target_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground (h, w) and offsets (2, h, w) at output stride `stride` over a padded input ->
    both at `target_size`, offsets in target pixels. The content is the input's top-left
    `content_size`; the rest (padding) is cut off."""
    height, width = foreground.shape
    maps = torch.cat([foreground[None].float(), offsets.float()], dim=0)[None]  # 1, 3, h, w
    if stride != 1:
        maps = F.interpolate(maps, size=(height * stride, width * stride), mode="bilinear", align_corners=False)
    maps = maps[..., :content_size[0], :content_size[1]]
    if tuple(content_size) != tuple(target_size):
        maps = F.interpolate(maps, size=tuple(target_size), mode="bilinear", align_corners=False)
    scale_y = stride * target_size[0] / content_size[0]
    scale_x = stride * target_size[1] / content_size[1]
    resampled_offsets = torch.stack([maps[0, 1] * scale_y, maps[0, 2] * scale_x])
    return maps[0, 0], resampled_offsets


def postprocess(foreground: torch.Tensor, centre: torch.Tensor, offsets: torch.Tensor, *, stride: int = 1,
                content_size: tuple[int, int] | None = None, target_size: tuple[int, int] | None = None,
                centre_threshold: float = 0.1, nms_kernel: int = 7, top_k: int = 20,
                foreground_threshold: float = 0.5, min_area: int = 200) -> list[Proposal]:
    """The proposals of one frame, highest score first.

    foreground: (h, w) person probability; centre: (h, w) centre heatmap (after the sigmoid);
    offsets: (2, h, w) (dy, dx) in output pixels; all at output stride `stride` over an input
    whose top-left `content_size` (default: all of it) is the frame resized; proposals come back
    at `target_size` (default: content_size). Peaks are found at the output resolution
    (`nms_kernel` in output pixels); grouping and `min_area` work at the target size.
    """
    foreground = torch.as_tensor(foreground).float().cpu()
    centre = torch.as_tensor(centre).float().cpu()
    offsets = torch.as_tensor(offsets).float().cpu()
    if foreground.shape != centre.shape or offsets.shape != (2, *foreground.shape):
        raise ValueError(f"foreground {tuple(foreground.shape)}, centre {tuple(centre.shape)} and offsets "
                         f"{tuple(offsets.shape)} must be (h, w), (h, w) and (2, h, w)")
    if content_size is None:
        content_size = (foreground.shape[0] * stride, foreground.shape[1] * stride)
    if target_size is None:
        target_size = content_size
    peaks, peak_values = find_centres(centre, centre_threshold, nms_kernel, top_k)
    if len(peaks) == 0:
        return []
    centres = to_target_coordinates(peaks, stride, content_size, target_size)  # N, 2
    probability, target_offsets = resample_maps(foreground, offsets, stride, content_size, target_size)
    labels = group_pixels(probability > foreground_threshold, target_offsets, centres)
    areas = torch.bincount(labels.flatten(), minlength=len(peaks) + 1)
    sums = torch.bincount(labels.flatten(), weights=probability.flatten().double(), minlength=len(peaks) + 1)
    proposals = []
    for k in range(len(peaks)):
        area = int(areas[k + 1])
        if area < min_area:
            continue
        score = float(peak_values[k]) * float(sums[k + 1] / area)
        proposals.append(Proposal(mask=(labels == k + 1).numpy(), score=score,
                                  centre=(float(centres[k, 0]), float(centres[k, 1])), area=area))
    proposals.sort(key=lambda proposal: -proposal.score)
    return proposals


def merge_proposals(proposal_lists: list[list[Proposal]], max_iou: float = 0.5) -> list[Proposal]:
    """The proposals of one frame found at several input sizes, as one list, highest score first.

    A proposal whose mask overlaps an already kept, higher-scoring one at IoU above `max_iou` is
    the same person found twice, and is dropped (mask non-maximum suppression; of equal scores the
    earlier list's wins). All masks must have the frame's size.
    """
    ordered = sorted((proposal for proposals in proposal_lists for proposal in proposals),
                     key=lambda proposal: -proposal.score)  # a stable sort: earlier lists first at ties
    kept: list[Proposal] = []
    for proposal in ordered:
        if all(mask_iou(proposal.mask, other.mask) <= max_iou for other in kept):
            kept.append(proposal)
    return kept


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; 0 when both are empty."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def pad_to_multiple(frame: np.ndarray, multiple: int = INPUT_MULTIPLE,
                    fill: tuple[int, int, int] = IMAGENET_MEAN_RGB) -> np.ndarray:
    """An (h, w, 3) uint8 frame padded at the bottom and right to multiples of `multiple`
    (by default with the ImageNet mean colour; `padding_colour` gives a network's own)."""
    height, width = frame.shape[:2]
    padded_h, padded_w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    if (padded_h, padded_w) == (height, width):
        return frame
    out = np.empty((padded_h, padded_w, 3), dtype=np.uint8)
    out[:] = np.asarray(fill, dtype=np.uint8)
    out[:height, :width] = frame
    return out


def padding_colour(model: nn.Module) -> tuple[int, int, int]:
    """The uint8 RGB colour `model`'s input normalisation turns into ~0 (its `config.input_mean`),
    ImageNet's mean when the model does not say."""
    mean = getattr(getattr(model, "config", None), "input_mean", ())
    return tuple(round(255 * value) for value in mean) if mean else IMAGENET_MEAN_RGB


def predict_proposals(model: nn.Module, frame: np.ndarray, size: int | None = None, *,
                      config: ProposalConfig | None = None,
                      autocast_dtype: torch.dtype | None = None) -> list[Proposal]:
    """The people in one (H, W, 3) uint8 RGB frame, as proposals at the frame's own size.

    size: short side the frame is resized to before the network (None: as it is); it is then
    padded to multiples of 16. config: post-processing settings (default: the model's own
    `config`); autocast_dtype: e.g. torch.bfloat16 to run the network under autocast. Runs under
    inference_mode with the model in eval mode (its previous mode is restored).
    """
    config = config if config is not None else model.config
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8 RGB (got {frame.shape} {frame.dtype})")
    height, width = frame.shape[:2]
    content_size = scaled_size(height, width, size) if size is not None else (height, width)
    padded = pad_to_multiple(resize_frame(frame, content_size), fill=padding_colour(model))
    device = next(model.parameters()).device
    image = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))).to(device)
    image = image[None].float().div_(255.0)  # 1, 3, Hp, Wp in [0, 1]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                                    enabled=autocast_dtype is not None):
            outputs = model(image)
    finally:
        model.train(was_training)
    stride = padded.shape[0] // outputs["foreground_logits"].shape[-2]
    return postprocess(torch.sigmoid(outputs["foreground_logits"][0, 0].float()),
                       torch.sigmoid(outputs["centre_logits"][0, 0].float()), outputs["offsets"][0].float(),
                       stride=stride, content_size=content_size, target_size=(height, width),
                       centre_threshold=config.centre_threshold, nms_kernel=config.nms_kernel, top_k=config.top_k,
                       foreground_threshold=config.foreground_threshold, min_area=config.min_proposal_area)
