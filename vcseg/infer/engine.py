"""The per-frame propagation loop: one memory network, one video, frame by frame (STCN / Cutie).

    engine = InferenceEngine(model, mem_every=5, working_size=8)
    probs = engine.step(frame, {1: mask_1, 2: mask_2})   # frame 0: objects given
    probs = engine.step(next_frame)                      # later frames: propagated

Frames and masks are in the network's space (padded to the stride; see `vcseg.infer.geometry`);
`step` returns 1 + K, H, W probabilities (channel 0 background, then one per live object in slot
order, `engine.ids`). A step is two halves that callers averaging several engines (test-time
augmentation, ensembles) use apart:

    probs = engine.predict(frame)        # encode the key once, read the memory, segment all objects
    engine.add_objects([3])              # objects starting at this frame, if any
    engine.commit(final_probs)           # what this frame is taken to be: its value joins the memory,
                                         # and it is the next frame's previous mask

What is remembered is `vcseg.infer.memory.MemoryBank`'s job, ids and slots `ObjectManager`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch

from vcseg.errors import VcsegError
from vcseg.infer.graphs import KeyEncoder
from vcseg.infer.memory import PERMANENT, TEMPORARY, WORKING, MemoryBank
from vcseg.infer.objects import ObjectManager, impose_masks
from vcseg.model.network import MemoryNetwork, QueryFeatures


class InferenceEngine:
    """Propagates the masks of a changing set of objects through one video with one model."""

    def __init__(self, model: MemoryNetwork, mem_every: int = 5, working_size: int = 8,
                 top_k: int | None = None, max_objects: int | None = None,
                 previous_in_memory: bool = True, encode_key: KeyEncoder | None = None) -> None:
        """encode_key: what encodes a frame's key and features, `model.encode_key` by default (on a
        GPU prediction passes its CUDA-graphed twin, `vcseg.infer.graphs`)."""
        if mem_every < 1:
            raise ValueError(f"mem_every must be at least 1 (got {mem_every})")
        self.model = model
        self.encode_key = encode_key or model.encode_key
        self.mem_every = mem_every
        self.top_k = top_k  # None: the model's own config.top_k
        self.max_objects = model.config.max_objects if max_objects is None else max_objects
        self.objects = ObjectManager()
        self.memory = MemoryBank(working_size)
        # STM writes every previous frame's value into the memory; STCN does not (the previous
        # mask still reaches the decoder through the spatial constraint), which spares the value
        # encoder on every frame that does not join the memory.
        self.previous_in_memory = previous_in_memory
        self.frame_index = -1
        self._last_memory_frame: int | None = None
        self._prev_masks: torch.Tensor | None = None  # 1, K, H, W: the last committed frame's objects
        # The frame predicted and not yet committed: image 1, 3, H, W, its key and features.
        self._frame: torch.Tensor | None = None
        self._key: torch.Tensor | None = None
        self._features: QueryFeatures | None = None

    @property
    def ids(self) -> list[int]:
        """Live object ids in slot order: channel 1 + i of the probabilities is ids[i]."""
        return self.objects.ids

    # ---- one frame ------------------------------------------------------------------------------

    def step(self, frame: torch.Tensor, new_masks: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """Segment the next frame (1, 3, H, W in [0, 1]) -> 1 + K, H, W probabilities.

        new_masks: {id: H, W mask in [0, 1]} given at this frame; new ids start here, and every
        given mask overrides the prediction where it is set.
        """
        probs = self.predict(frame)
        if new_masks:
            ids = list(new_masks)
            self.add_objects(ids)
            given = torch.stack([new_masks[i].to(probs) for i in ids])  # G, H, W
            probs = impose_masks(probs, given, [self.objects.slot(i) for i in ids], len(self.objects))
        self.commit(probs)
        return probs

    def predict(self, frame: torch.Tensor) -> torch.Tensor:
        """The probabilities of the live objects in the next frame: 1, 3, H, W -> 1 + K, H, W.

        With no live object the frame is all background and the network does not run.
        """
        if self._frame is not None:
            raise RuntimeError("predict() twice without commit(); commit the previous frame first")
        self.frame_index += 1
        self._frame = frame
        self._key = self._features = None
        if not len(self.objects):
            return torch.ones(1, *frame.shape[-2:], device=frame.device)
        self._key, self._features = self.encode_key(frame)
        readout = self._read(self._key)  # 1, K, Cv, h, w
        _, probs = self.model.segment(readout, self._features, self._prev_masks)
        return probs[0]

    def add_objects(self, ids: list[int]) -> list[int]:
        """Start these ids at the current frame (after `predict`, before `commit`); returns those new."""
        if self._frame is None:
            raise RuntimeError("add_objects() belongs between predict() and commit() of the frame they start at")
        new = [i for i in dict.fromkeys(int(i) for i in ids) if i not in self.objects]
        if len(self.objects) + len(new) > self.max_objects:
            raise VcsegError(f"{len(self.objects) + len(new)} objects at frame {self.frame_index}, more than "
                             f"the model's max_objects={self.max_objects}; give fewer objects")
        return self.objects.add(new, self.frame_index)

    def commit(self, probs: torch.Tensor) -> None:
        """Take `probs` (1 + K, H, W, K live objects) as this frame's result: remember it, move on."""
        if self._frame is None:
            raise RuntimeError("commit() without predict()")
        frame, key, features = self._frame, self._key, self._features
        self._frame = self._key = self._features = None
        if probs.shape[0] != 1 + len(self.objects):
            raise ValueError(f"commit() needs 1 + {len(self.objects)} channels (got {probs.shape[0]})")
        if not len(self.objects):
            return
        masks = probs[1:].unsqueeze(0)  # 1, K, H, W
        self._prev_masks = masks
        started = frozenset(i for i in self.objects.ids if self.objects.start_frame(i) == self.frame_index)
        if started:
            kind = PERMANENT
        elif self._last_memory_frame is None or self.frame_index - self._last_memory_frame >= self.mem_every:
            kind = WORKING
        else:
            kind = TEMPORARY
        if kind == TEMPORARY and not self.previous_in_memory:
            return
        if kind != TEMPORARY:
            self._last_memory_frame = self.frame_index
        if key is None:  # the first objects start at this frame: the key was not needed before
            key, features = self.encode_key(frame)
        values = self.model.encode_value(frame, features, masks)[0]  # K, Cv, h, w
        self.memory.add(self.frame_index, kind, key[0], values, self.objects.ids, introduced=started)

    def remove_object(self, object_id: int) -> None:
        """Stop tracking an id: its slot, memory values and previous mask go; other ids keep theirs."""
        slot = self.objects.remove(object_id)
        self.memory.remove_object(object_id)
        if self._prev_masks is not None:
            keep = [i for i in range(self._prev_masks.shape[1]) if i != slot]
            self._prev_masks = self._prev_masks[:, keep]

    # ---- memory read ----------------------------------------------------------------------------

    def _read(self, key: torch.Tensor) -> torch.Tensor:
        """Every live object's memory read -> 1, K, Cv, h, w; objects that started together are read
        together from the entries holding them (see `vcseg.infer.memory`)."""
        groups = [ids for _, ids in self.objects.groups()]
        reads: dict[int, torch.Tensor] = {}
        with self._top_k():
            shared = self.memory.read_groups(groups)
            if shared is not None:  # one affinity for all groups: each reads its run of entries
                readouts = self.model.read_memory_groups(key, *shared)
            else:
                readouts = [self.model.read_memory(key, *self.memory.read_tensors(ids)) for ids in groups]
            for ids, readout in zip(groups, readouts):  # readout: 1, G, Cv, h, w
                reads.update({object_id: readout[:, i] for i, object_id in enumerate(ids)})
        return torch.stack([reads[i] for i in self.objects.ids], dim=1)

    @contextlib.contextmanager
    def _top_k(self) -> Iterator[None]:
        """Read with `self.top_k` when set: the model's config says it, so swap it for the read."""
        config = self.model.config
        if self.top_k is None or self.top_k == config.top_k:
            yield
            return
        self.model.config = dataclasses.replace(config, top_k=self.top_k)
        try:
            yield
        finally:
            self.model.config = config
