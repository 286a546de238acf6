"""Objects that come and go: stable ids <-> the dense slots the network works on.

The network segments K objects as K channels (slots 0..K-1). Users and masks speak of ids (the
pixel values of a mask, 1..255). `ObjectManager` keeps the mapping: an added id takes the next
slot, a removed id frees its slot and the slots after it move down by one (tensors indexed by
slot drop that channel the same way), so ids never change while slots stay dense.

Each object also remembers the frame where it started: memory frames older than that hold no
value for it (see `vcseg.infer.memory`).
"""

from __future__ import annotations

import numpy as np
import torch

MAX_ID = 255


class ObjectManager:
    """Live object ids in slot order, with the frame each one started at."""

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._start: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, object_id: int) -> bool:
        return object_id in self._start

    @property
    def ids(self) -> list[int]:
        """Live ids in slot order (slot i holds ids[i])."""
        return list(self._ids)

    def add(self, ids: list[int], frame_index: int) -> list[int]:
        """Start the ids not yet live at `frame_index`; returns them (in the order given)."""
        added = []
        for object_id in ids:
            object_id = int(object_id)
            if not 1 <= object_id <= MAX_ID:
                raise ValueError(f"object ids are 1..{MAX_ID} (got {object_id})")
            if object_id in self._start:
                continue
            self._ids.append(object_id)
            self._start[object_id] = frame_index
            added.append(object_id)
        return added

    def remove(self, object_id: int) -> int:
        """Drop a live id; returns the slot it held (later slots move down by one)."""
        if object_id not in self._start:
            raise KeyError(f"object {object_id} is not live (live: {self._ids})")
        slot = self._ids.index(object_id)
        del self._ids[slot]
        del self._start[object_id]
        return slot

    def slot(self, object_id: int) -> int:
        return self._ids.index(object_id)

    def start_frame(self, object_id: int) -> int:
        return self._start[object_id]

    def groups(self) -> list[tuple[int, list[int]]]:
        """Live ids grouped by start frame, oldest group first: [(start_frame, [ids in slot order])]."""
        by_start: dict[int, list[int]] = {}
        for object_id in self._ids:
            by_start.setdefault(self._start[object_id], []).append(object_id)
        return sorted(by_start.items())

    def id_lookup(self) -> np.ndarray:
        """uint8 table from channel (0 background, 1 + slot) to id: `lookup[argmax]` is the id mask."""
        return np.array([0, *self._ids], dtype=np.uint8)


def impose_masks(probs: torch.Tensor, given: torch.Tensor, given_slots: list[int], objects: int) -> torch.Tensor:
    """Probabilities of `objects` slots in which given masks override the prediction.

    probs: 1 + K_old, H, W (channel 0 background) predicted for the first K_old slots;
    given: G, H, W masks in [0, 1] for the slots `given_slots` (new slots or old ones);
    returns 1 + objects, H, W summing to 1: given slots take their mask, every other slot keeps its
    probability where no given mask claims the pixel, the background takes what is left.
    """
    old = probs.shape[0] - 1
    height, width = probs.shape[-2:]
    result = torch.zeros(1 + objects, height, width, dtype=probs.dtype, device=probs.device)
    claimed = given.amax(dim=0) if len(given_slots) else torch.zeros_like(probs[0])  # H, W
    result[1:1 + old] = probs[1:] * (1 - claimed)
    for mask, slot in zip(given, given_slots):
        result[1 + slot] = mask
    result[0] = (1 - result[1:].sum(dim=0)).clamp(min=0)
    return result / result.sum(dim=0, keepdim=True).clamp(min=1e-12)
