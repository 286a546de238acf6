"""The bounded memory bank: which frames' keys and values are remembered, and which are dropped.

Three kinds of entries (XMem's split, without its long-term consolidation):

- permanent: the frame where objects were first given. It stays as long as one of the objects it
  introduced is live, so there are at most as many permanent entries as live objects;
- working: every `mem_every`-th frame joins, at most `working_size` of them, oldest dropped first;
- temporary: the previous frame, always read; replaced each frame, dropped when the frame after it
  joins the memory itself.

So the bank never holds more than `live objects + working_size + 1` frames, however long the video.

Values are per object. An entry holds values for the objects live when it was written; an object
added at frame t therefore has values only in entries from frame t on. Rather than giving it zero
values in older entries (which would still draw attention weight away from its real values), reads
are grouped: objects that started at the same frame are read together from the entries that hold
them, each group with its own affinity (XMem's object buckets).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

PERMANENT, WORKING, TEMPORARY = "permanent", "working", "temporary"


@dataclass
class MemoryEntry:
    """One remembered frame: its key (Ck, h, w) and one value (Cv, h, w) per object in `ids`."""

    frame_index: int
    kind: str
    key: torch.Tensor  # Ck, h, w
    values: torch.Tensor  # len(ids), Cv, h, w
    ids: list[int]
    introduced: frozenset[int] = field(default_factory=frozenset)  # permanent entries: ids started here

    @property
    def nbytes(self) -> int:
        return self.key.nelement() * self.key.element_size() + self.values.nelement() * self.values.element_size()


class MemoryBank:
    """Keys and values of the remembered frames of one video, bounded in size."""

    def __init__(self, working_size: int) -> None:
        if working_size < 1:
            raise ValueError(f"working_size must be at least 1 (got {working_size})")
        self.working_size = working_size
        self.entries: list[MemoryEntry] = []

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def nbytes(self) -> int:
        """Bytes of every key and value tensor held."""
        return sum(entry.nbytes for entry in self.entries)

    def count(self, kind: str) -> int:
        return sum(entry.kind == kind for entry in self.entries)

    def frame_indices(self, kind: str | None = None) -> list[int]:
        return [entry.frame_index for entry in self.entries if kind is None or entry.kind == kind]

    def add(self, frame_index: int, kind: str, key: torch.Tensor, values: torch.Tensor, ids: list[int],
            introduced: frozenset[int] = frozenset()) -> None:
        """Remember a frame. key: Ck, h, w; values: len(ids), Cv, h, w.

        The previous temporary entry always goes: a newer frame is now the latest one.
        """
        if kind not in (PERMANENT, WORKING, TEMPORARY):
            raise ValueError(f"unknown memory kind {kind!r}")
        if values.shape[0] != len(ids):
            raise ValueError(f"{values.shape[0]} values for {len(ids)} ids")
        self.entries = [entry for entry in self.entries if entry.kind != TEMPORARY]
        self.entries.append(MemoryEntry(frame_index, kind, key, values, list(ids), introduced))
        working = [entry for entry in self.entries if entry.kind == WORKING]
        if len(working) > self.working_size:
            oldest = working[0]
            self.entries = [entry for entry in self.entries if entry is not oldest]

    def read_tensors(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the entries that hold every id of `ids`, in the network's layout.

        Returns keys 1, Ck, T, h, w and values 1, len(ids), Cv, T, h, w (T entries, oldest first).
        """
        holding = self._holding(ids)
        keys = torch.stack([self.entries[index].key for index in holding], dim=1)  # Ck, T, h, w
        return keys.unsqueeze(0), self._values(ids, holding)

    def read_groups(self, groups: list[list[int]]
                    ) -> tuple[torch.Tensor, list[tuple[int, torch.Tensor]]] | None:
        """For reading several groups of objects against one affinity: the keys of every entry,
        1, Ck, T, h, w, and per group (index of the first entry holding all its ids, their values
        1, len(ids), Cv, T_g, h, w). None where the entries holding a group are not consecutive
        (read that memory group by group with `read_tensors`). They are consecutive while entries
        are kept in frame order: an object is held by every entry from its first frame on.
        """
        if not self.entries:
            raise ValueError("the memory is empty")
        parts = []
        for ids in groups:
            holding = self._holding(ids)
            if holding != list(range(holding[0], holding[-1] + 1)):
                return None
            parts.append((holding[0], self._values(ids, holding)))
        keys = torch.stack([entry.key for entry in self.entries], dim=1)  # Ck, T, h, w
        return keys.unsqueeze(0), parts

    def _holding(self, ids: list[int]) -> list[int]:
        """Indices of the entries that hold every id of `ids` (at least one, else ValueError)."""
        holding = [index for index, entry in enumerate(self.entries) if all(i in entry.ids for i in ids)]
        if not holding:
            raise ValueError(f"no memory entry holds objects {ids}")
        return holding

    def _values(self, ids: list[int], holding: list[int]) -> torch.Tensor:
        """The values of `ids` in the entries `holding`: 1, len(ids), Cv, T, h, w."""
        entries = [self.entries[index] for index in holding]
        values = torch.stack([entry.values[[entry.ids.index(i) for i in ids]] for entry in entries], dim=2)
        return values.unsqueeze(0)  # 1, K, Cv, T, h, w

    def remove_object(self, object_id: int) -> None:
        """Forget an object's values; entries left with no object, or permanent entries whose
        objects are all gone, are dropped."""
        kept = []
        for entry in self.entries:
            if object_id in entry.ids:
                index = entry.ids.index(object_id)
                keep = [i for i in range(len(entry.ids)) if i != index]
                entry.values = entry.values[keep]
                entry.ids = [entry.ids[i] for i in keep]
            if entry.kind == PERMANENT:
                entry.introduced = entry.introduced - {object_id}
                if not entry.introduced:
                    continue
            if entry.ids:
                kept.append(entry)
        self.entries = kept
