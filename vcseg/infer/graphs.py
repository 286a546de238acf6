"""The query encoder replayed from CUDA graphs.

On a GPU, prediction waits on the CPU, not on the GPU: with the default weights on an H200 at
854x480 a trace held 4.09 s of CPU time against 0.59 s of GPU time, most of it launching
convolutions (README, "GPU"). A frame's key encoding is one fixed pass of the encoder, the same
shapes frame after frame, which is what a CUDA graph replays in one launch.

    encode_key = graphed_key_encoder(model)   # model.encode_key itself off CUDA
    key, features = encode_key(frame)         # the values model.encode_key(frame) gives

One graph per input signature (shape, dtype, device, autocast setting), captured the first time
it is met, after warm-up passes, and replayed after: the frame is copied into the graph's input
and its outputs are copied out, since a replay rewrites the same memory and a frame's key lives
on in the memory bank. A graph reads the weights where they were at capture, so only a model
prediction prepared for itself (`MemoryNetwork.for_prediction`: every checkpoint it loads, never
trained again) gets graphs, and only under `torch.inference_mode`; a model handed over in memory
(validation during training) runs its own `encode_key`.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vcseg.model.network import MemoryNetwork, QueryFeatures

KeyEncoder = Callable[[torch.Tensor], tuple[torch.Tensor, QueryFeatures]]
WARMUP_PASSES = 2  # before a capture, on a side stream, as CUDA graphs want (cuDNN and allocator set up)
MAX_GRAPHS = 8  # per model: the least recently used goes (videos of many sizes, scales of test-time augmentation)

# One encoder per model, so that its graphs serve every video the model predicts
_ENCODERS: weakref.WeakKeyDictionary[MemoryNetwork, GraphedKeyEncoder] = weakref.WeakKeyDictionary()


def graphed_key_encoder(model: MemoryNetwork, enabled: bool = True) -> KeyEncoder:
    """`model.encode_key`, replayed from CUDA graphs when `enabled`, the model prepared for prediction
    and on a CUDA device."""
    if not (enabled and model.prepared_for_prediction and next(model.parameters()).device.type == "cuda"):
        return model.encode_key
    encoder = _ENCODERS.get(model)
    if encoder is None:
        encoder = _ENCODERS[model] = GraphedKeyEncoder(model)
    return encoder


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    frames: torch.Tensor  # the input the graph reads
    key: torch.Tensor  # the outputs it writes
    features: QueryFeatures


class GraphedKeyEncoder:
    """`model.encode_key` on CUDA, each input signature captured once and replayed after."""

    def __init__(self, model: MemoryNetwork) -> None:
        self._model = weakref.ref(model)  # not a strong one: the cache entry keyed by the model must let it go
        self.graphs: OrderedDict[tuple, _Graph] = OrderedDict()

    @property
    def model(self) -> MemoryNetwork:
        model = self._model()
        if model is None:
            raise RuntimeError("the model of this graphed encoder is gone")
        return model

    def __call__(self, frames: torch.Tensor) -> tuple[torch.Tensor, QueryFeatures]:
        if not torch.is_inference_mode_enabled() or self.model.training or frames.device.type != "cuda":
            return self.model.encode_key(frames)
        signature = (tuple(frames.shape), frames.dtype, frames.device, torch.is_autocast_enabled("cuda"),
                     torch.get_autocast_dtype("cuda"))
        captured = self.graphs.get(signature)
        if captured is None:
            captured = self.graphs[signature] = _capture(self.model.encode_key, frames)
            while len(self.graphs) > MAX_GRAPHS:
                self.graphs.popitem(last=False)
        self.graphs.move_to_end(signature)
        captured.frames.copy_(frames)
        captured.graph.replay()
        return captured.key.clone(), captured.features.map(torch.clone)


def _capture(encode_key: KeyEncoder, example: torch.Tensor) -> _Graph:
    """A graph of `encode_key` on inputs like `example`, under the autocast setting now in force
    (with its weight-cast cache off, which graph capture needs)."""
    frames = example.clone()
    autocast = torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"),
                              enabled=torch.is_autocast_enabled("cuda"), cache_enabled=False)
    side = torch.cuda.Stream(device=frames.device)
    side.wait_stream(torch.cuda.current_stream(frames.device))
    with torch.cuda.stream(side), autocast:
        for _ in range(WARMUP_PASSES):
            encode_key(frames)
    torch.cuda.current_stream(frames.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with autocast, torch.cuda.graph(graph):
        key, features = encode_key(frames)
    return _Graph(graph=graph, frames=frames, key=key, features=features)
