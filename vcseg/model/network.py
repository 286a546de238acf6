"""The space-time memory network (STM, with STCN's key reuse and the champion's decoder).

The model is a few verbs that an inference engine drives frame by frame:

    key, features = model.encode_key(frame)                        # every frame, once
    value = model.encode_value(frame, features, masks)             # frames that enter the memory
    readout = model.read_memory(key, memory_keys, memory_values)   # query against the memory
    logits, probs = model.segment(readout, features, prev_masks, valid)

A frame's key is kept when the frame enters the memory, so memory frames are never re-encoded.
`forward` runs a training clip through the same verbs. Frames are float RGB in [0, 1] (the model
normalises them with `config.input_mean` / `input_std`, resolved from the encoder's weights by
`vcseg.model.pretrained`), of any height and width that are multiples of 16:
padding is the caller's job. Objects are K slots; `valid` (B, K bool) marks padded slots, whose
masks must be zero and which come out with probability 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

from vcseg.config import ModelConfig
from vcseg.errors import VcsegError
from vcseg.model import memory
from vcseg.model.aggregate import other_objects, soft_aggregate
from vcseg.model.decoder import Decoder
from vcseg.model.encoders import SKIP_INDICES, build_encoder, skip_channels
from vcseg.model.fold import fold_batch_norms
from vcseg.model.modules import ResBlock, SpatialConstraint
from vcseg.model.pretrained import IMAGENET, input_normalisation, with_input_normalisation

STRIDE = 16  # keys and values live at 1/16 of the input size


@dataclass
class QueryFeatures:
    """What `encode_key` keeps of a frame besides its key (B frames, h, w = H/16, W/16).

    f16: B, C16, h, w encoder features (the value encoder fuses them);
    f8: B, C8, 2h, 2w and f4: B, C4, 4h, 4w skip maps for the decoder;
    value: B, value_dim, h, w the query's own value-like features, decoded next to the memory read.
    """

    f16: torch.Tensor
    f8: torch.Tensor
    f4: torch.Tensor
    value: torch.Tensor

    def map(self, function: Callable[[torch.Tensor], torch.Tensor]) -> QueryFeatures:
        """The same features with `function` applied to each tensor (e.g. select frames, move device)."""
        return QueryFeatures(**{f.name: function(getattr(self, f.name)) for f in fields(self)})


class MemoryNetwork(nn.Module):
    """Space-time memory network for up to `config.max_objects` objects per video.

    Example:
        model = MemoryNetwork(ModelConfig(encoder="resnet18", value_dim=128))
        logits = model(frames, first_masks)  # B, T, 3, H, W and B, K, H, W -> B, T-1, K+1, H, W
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        config = with_input_normalisation(config)  # input_mean / input_std filled in
        self.config = config
        self.prepared_for_prediction = False  # `for_prediction` done: prediction's own, never trained again
        self.encoder = build_encoder(config.encoder, 3, config.encoder_weights)
        c4, c8, c16 = skip_channels(self.encoder)
        self.key_projection = nn.Conv2d(c16, config.key_dim, 3, padding=1)
        self.query_value = nn.Conv2d(c16, config.value_dim, 3, padding=1)
        # Frame + the object's mask + the other objects' masks: 5 channels per object.
        _check_value_normalisation(config)
        self.value_encoder = build_encoder(config.value_encoder, 5, config.value_encoder_weights,
                                           setting="model.value_encoder_weights")
        value_c16 = skip_channels(self.value_encoder)[2]
        self.value_fuser = nn.Sequential(ResBlock(value_c16 + c16, config.value_dim),
                                         ResBlock(config.value_dim, config.value_dim))
        decoder_in = 2 * config.value_dim  # memory read + query value
        self.spatial_constraint = SpatialConstraint(decoder_in) if config.spatial_constraint else None
        self.decoder = Decoder(decoder_in, c8, c4, config.decoder_dim, config.aspp_rates)
        self.register_buffer("mean", torch.tensor(config.input_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.input_std).view(1, 3, 1, 1), persistent=False)
        if config.channels_last:
            self.to(memory_format=torch.channels_last)

    # ---- verbs ----------------------------------------------------------------------------------

    def encode_key(self, frames: torch.Tensor) -> tuple[torch.Tensor, QueryFeatures]:
        """Key and features of B frames: B, 3, H, W in [0, 1] -> (B, key_dim, H/16, W/16 key, features)."""
        _check_size(frames)
        skips = self.encoder(self._normalise(frames))  # one encoder pass; the skips are picked from it
        f4, f8, f16 = (skips[i] for i in SKIP_INDICES)
        key = self.key_projection(f16)
        return key, QueryFeatures(f16=f16, f8=f8, f4=f4, value=self.query_value(f16))

    def encode_value(self, frames: torch.Tensor, features: QueryFeatures, masks: torch.Tensor,
                     other_masks: torch.Tensor | None = None) -> torch.Tensor:
        """Memory values of K objects in B frames -> B, K, value_dim, H/16, W/16.

        frames: B, 3, H, W in [0, 1]; features: the frames' `encode_key` features; masks: B, K, H, W
        (hard or soft, zero for padded slots); other_masks: B, K, H, W union of the other objects
        (default: computed from `masks`).
        """
        batch, objects = masks.shape[:2]
        if other_masks is None:
            other_masks = other_objects(masks)
        image = self._normalise(frames)  # B, 3, H, W
        masks = masks.to(image.dtype).unsqueeze(2)  # B, K, 1, H, W
        other_masks = other_masks.to(image.dtype).unsqueeze(2)
        if image.device.type == "cpu" and not torch.is_grad_enabled():
            # One object at a time: on a CPU the encoder's maps of one frame stay in cache (4 objects
            # at 480x864 take 0.16 s so against 0.19-0.27 s as one batch; 2 cores, bf16). Each input
            # is concatenated on its own, in the image's memory format: 4 objects' inputs take 6 ms
            # so, against 33 ms for one batch made channels-last after.
            value_f16 = torch.cat([
                self.value_encoder(torch.cat([image[b:b + 1], masks[b, k:k + 1], other_masks[b, k:k + 1]], dim=1))[
                    SKIP_INDICES[2]]
                for b in range(batch) for k in range(objects)])  # B*K, Cv16, h, w
        else:
            expanded = image.unsqueeze(1).expand(-1, objects, -1, -1, -1)  # B, K, 3, H, W
            inputs = torch.cat([expanded, masks, other_masks], dim=2).flatten(0, 1)
            if self.config.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            value_f16 = self.value_encoder(inputs)[SKIP_INDICES[2]]  # B*K, Cv16, h, w
        frame_f16 = features.f16.unsqueeze(1).expand(-1, objects, -1, -1, -1).flatten(0, 1)  # B*K, C16, h, w
        value = self.value_fuser(torch.cat([value_f16, frame_f16.to(value_f16.dtype)], dim=1))
        return value.view(batch, objects, *value.shape[1:])

    def read_memory(self, query_key: torch.Tensor, memory_keys: torch.Tensor,
                    memory_values: torch.Tensor) -> torch.Tensor:
        """Each object's memory values read at the query's positions -> B, K, value_dim, h, w.

        query_key: B, key_dim, h, w; memory_keys: B, key_dim, T, h', w'; memory_values:
        B, K, value_dim, T, h', w'. One affinity serves all K objects (config: affinity, top_k,
        read_chunk).
        """
        return self.read_memory_groups(query_key, memory_keys, [(0, memory_values)])[0]

    def read_memory_groups(self, query_key: torch.Tensor, memory_keys: torch.Tensor,
                           groups: list[tuple[int, torch.Tensor]]) -> list[torch.Tensor]:
        """`read_memory` for groups of objects held by different runs of the memory frames, the
        affinity computed once: memory_keys B, key_dim, T, h', w'; groups (first frame t, values
        B, G, value_dim, T_g, h', w' of frames t .. t + T_g - 1). Returns B, G, value_dim, h, w per group.
        """
        batch, key_dim, height, width = query_key.shape
        frame_positions = memory_keys.shape[3] * memory_keys.shape[4]
        reads = memory.read_memory_ranges(
            memory_keys.flatten(2),
            [(first * frame_positions, values.flatten(3).flatten(1, 2)) for first, values in groups],
            query_key.flatten(2), kind=self.config.affinity, top_k=self.config.top_k, chunk=self.config.read_chunk)
        return [read.view(batch, values.shape[1], values.shape[2], height, width)
                for read, (_, values) in zip(reads, groups)]

    def segment(self, readout: torch.Tensor, features: QueryFeatures, prev_masks: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode the memory read into one distribution per pixel.

        readout: B, K, value_dim, h, w (from `read_memory`); features: the query frame's;
        prev_masks: B, K, H, W the previous frame's object probabilities (needed when the spatial
        constraint is on); valid: B, K bool or None.
        Returns (logits, probs), both B, K+1, H, W float32, channel 0 the background; probs sum to 1.
        """
        batch, objects = readout.shape[:2]
        query_value = features.value.unsqueeze(1).expand(-1, objects, -1, -1, -1)
        x = torch.cat([readout, query_value.to(readout.dtype)], dim=2)  # B, K, 2*value_dim, h, w
        if self.spatial_constraint is not None:
            if prev_masks is None:
                raise ValueError("segment() needs prev_masks (B, K, H, W) when the spatial constraint is on")
            gated, _ = self.spatial_constraint(x.flatten(0, 1), prev_masks.flatten(0, 1).unsqueeze(1))
            x = gated.view(batch, objects, *gated.shape[1:])
        object_logits = self.decoder(x, features.f8, features.f4)  # B, K, H, W
        return soft_aggregate(torch.sigmoid(object_logits.float()), valid)

    # ---- training -------------------------------------------------------------------------------

    def forward(self, frames: torch.Tensor, first_masks: torch.Tensor,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        """A training clip, frame by frame: B, T, 3, H, W and B, K, H, W -> logits B, T-1, K+1, H, W.

        Frame 0 enters the memory with `first_masks`; each later frame is segmented from the
        memory, then enters it with its own predicted probabilities (not detached, as STCN), and
        serves as the previous mask of the next frame. Logit channel 0 is the background; train
        with cross-entropy against ids 0..K of frames 1..T-1.
        """
        batch, clip_length = frames.shape[:2]
        objects = first_masks.shape[1]
        if clip_length < 2:
            raise ValueError(f"a training clip needs at least 2 frames (got {clip_length})")
        if objects > self.config.max_objects:
            raise VcsegError(f"{objects} objects in a clip, more than model.max_objects="
                             f"{self.config.max_objects}; raise model.max_objects or drop objects")
        if valid is None:
            valid = torch.ones(batch, objects, dtype=torch.bool, device=frames.device)
        masks = first_masks * valid[:, :, None, None].to(first_masks.dtype)  # B, K, H, W

        keys, features = self.encode_key(frames.flatten(0, 1))  # B*T, key_dim, h, w
        keys = keys.view(batch, clip_length, *keys.shape[1:])  # B, T, key_dim, h, w

        def frame_features(t: int) -> QueryFeatures:
            return features.map(lambda x: x.view(batch, clip_length, *x.shape[1:])[:, t])

        memory_keys = [keys[:, 0]]
        memory_values = [self.encode_value(frames[:, 0], frame_features(0), masks)]
        prev_masks = masks
        all_logits = []
        for t in range(1, clip_length):
            current = frame_features(t)
            readout = self.read_memory(keys[:, t], torch.stack(memory_keys, dim=2),
                                       torch.stack(memory_values, dim=3))
            logits, probs = self.segment(readout, current, prev_masks, valid)
            all_logits.append(logits)
            prev_masks = probs[:, 1:]  # B, K, H, W
            if t < clip_length - 1:
                memory_keys.append(keys[:, t])
                memory_values.append(self.encode_value(frames[:, t], current, prev_masks))
        return torch.stack(all_logits, dim=1)

    def for_prediction(self) -> MemoryNetwork:
        """This model made faster to predict with, in place and in eval mode: the encoders' batch
        norms folded into their convolutions (`vcseg.model.fold`), weights and activations stored
        channels-last from now on (`config.channels_last`). The masks stay the same in fp32; under
        bf16 the rounding differs, which moves J&F a little either way (see the README).
        Prediction does this to every memory network it loads; a model trained further after it
        would train without those batch norms.

        Measured on 2 CPU cores, default weights, 480x864: channels-last runs the query encoder in
        0.107 s against 0.188 s in fp32, 0.062 s against 0.105 s in bf16.
        """
        self.eval()
        device = self.mean.device
        fold_batch_norms(self.encoder, torch.rand(1, 3, 64, 64, device=device))
        fold_batch_norms(self.value_encoder, torch.rand(1, 5, 64, 64, device=device))
        self.config = dataclasses.replace(self.config, channels_last=True)
        self.prepared_for_prediction = True  # prediction's own: CUDA graphs may capture its weights in place
        return self.to(memory_format=torch.channels_last)

    def _normalise(self, frames: torch.Tensor) -> torch.Tensor:
        x = (frames - self.mean) / self.std
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def build_model(config: ModelConfig) -> MemoryNetwork:
    """The memory network described by `config` (random weights, or the encoder's: ImageNet or from disk)."""
    return MemoryNetwork(config)


def _check_value_normalisation(config: ModelConfig) -> None:
    """The value encoder sees frames normalised for the query encoder: ImageNet weights in the value
    encoder must have been trained with the same statistics."""
    if config.value_encoder_weights != IMAGENET:
        return
    mean, std = input_normalisation(config.value_encoder, IMAGENET, "model.value_encoder_weights")
    if not (np.allclose(mean, config.input_mean) and np.allclose(std, config.input_std)):
        raise VcsegError(f"model.value_encoder_weights = \"imagenet\": {config.value_encoder}'s weights expect "
                         f"inputs normalised with mean {mean}, std {std}, but the frames are normalised with "
                         f"{tuple(config.input_mean)}, {tuple(config.input_std)} for the query encoder; use "
                         f"encoders of one family (e.g. both tu-tf_efficientnet_lite0) or a random value encoder")


def _check_size(frames: torch.Tensor) -> None:
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be B, 3, H, W (got {tuple(frames.shape)})")
    height, width = frames.shape[-2:]
    if height % STRIDE or width % STRIDE:
        raise ValueError(f"frame size {height}x{width} is not a multiple of {STRIDE}; pad the frames first")
