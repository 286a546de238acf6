from __future__ import annotations

import pytest
import torch

from tests.infer.conftest import tiny_model
from vcseg.infer.engine import InferenceEngine
from vcseg.infer.memory import PERMANENT, TEMPORARY, WORKING, MemoryBank


def entry(values: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(4, 2, 2), torch.zeros(values, 8, 2, 2)


def test_bank_keeps_permanent_bounded_working_and_one_temporary():
    bank = MemoryBank(working_size=2)
    bank.add(0, PERMANENT, *entry(), ids=[1], introduced=frozenset({1}))
    for t in range(1, 8):
        bank.add(t, WORKING if t % 2 == 0 else TEMPORARY, *entry(), ids=[1])
    # frames 2, 4, 6 were working (2 dropped as the oldest); 7 is the temporary entry
    assert bank.frame_indices(PERMANENT) == [0]
    assert bank.frame_indices(WORKING) == [4, 6]
    assert bank.frame_indices(TEMPORARY) == [7]
    bank.add(8, WORKING, *entry(), ids=[1])  # the frame after the temporary one replaces it
    assert bank.frame_indices() == [0, 6, 8]
    # key 4*2*2 + values 1*8*2*2 float32 per entry
    assert bank.nbytes == 3 * (16 + 32) * 4


def test_reads_only_entries_holding_the_objects_and_removal():
    bank = MemoryBank(working_size=4)
    bank.add(0, PERMANENT, torch.full((4, 2, 2), 0.0), torch.zeros(1, 8, 2, 2), ids=[1], introduced=frozenset({1}))
    bank.add(3, PERMANENT, torch.full((4, 2, 2), 3.0), torch.stack([torch.full((8, 2, 2), 1.0),
                                                                     torch.full((8, 2, 2), 2.0)]),
             ids=[1, 2], introduced=frozenset({2}))
    keys, values = bank.read_tensors([1])
    assert keys.shape == (1, 4, 2, 2, 2) and values.shape == (1, 1, 8, 2, 2, 2)
    keys, values = bank.read_tensors([2])  # object 2 exists from frame 3 only
    assert keys.shape == (1, 4, 1, 2, 2) and keys.unique().tolist() == [3.0]
    assert values.unique().tolist() == [2.0]
    bank.remove_object(2)  # frame 3 introduced only object 2: it goes
    assert bank.frame_indices() == [0]


@pytest.mark.parametrize("previous_in_memory", [True, False])
def test_engine_memory_never_exceeds_its_bound_and_stops_growing(previous_in_memory):
    # 40 frames, mem_every 2, mem_size 3: permanent frame 0 + 3 working (+ 1 temporary, STM) at most.
    engine = InferenceEngine(tiny_model(), mem_every=2, working_size=3, previous_in_memory=previous_in_memory)
    generator = torch.Generator().manual_seed(0)
    mask = torch.zeros(32, 48)
    mask[8:20, 10:30] = 1
    sizes, counts = [], []
    with torch.inference_mode():
        for t in range(40):
            frame = torch.rand(1, 3, 32, 48, generator=generator)
            engine.step(frame, {4: mask} if t == 0 else None)
            counts.append(len(engine.memory))
            sizes.append(engine.memory.nbytes)
            assert engine.memory.count(PERMANENT) == 1
            assert engine.memory.count(WORKING) <= 3
            assert engine.memory.count(TEMPORARY) <= int(previous_in_memory)
    most = 5 if previous_in_memory else 4
    assert max(counts) == most
    # working frames are 2, 4, 6, ...: at the end the last three of them, then (STM) the temporary frame 39
    assert engine.memory.frame_indices() == [0, 34, 36, 38] + ([39] if previous_in_memory else [])
    entry_bytes = sizes[0]  # frame 0 alone
    assert sizes == [count * entry_bytes for count in counts]  # every entry costs the same
    assert max(sizes[20:]) == max(sizes[:20]) == most * entry_bytes  # the second half is no bigger
    assert engine.ids == [4]


def test_groups_read_runs_of_consecutive_entries_and_refuse_gaps():
    bank = MemoryBank(working_size=4)
    key = torch.zeros(2, 3, 4)
    bank.add(0, PERMANENT, key, torch.full((1, 5, 3, 4), 1.0), [1], introduced=frozenset({1}))
    bank.add(3, PERMANENT, key + 1, torch.stack([torch.full((5, 3, 4), 2.0), torch.full((5, 3, 4), 3.0)]), [1, 2],
             introduced=frozenset({2}))
    bank.add(5, WORKING, key + 2, torch.stack([torch.full((5, 3, 4), 4.0), torch.full((5, 3, 4), 5.0)]), [1, 2])
    keys, parts = bank.read_groups([[1], [2]])
    assert keys.shape == (1, 2, 3, 3, 4)
    assert [first for first, _ in parts] == [0, 1]  # object 2 is held from the second entry on
    assert parts[0][1][0, 0, 0, :, 0, 0].tolist() == [1.0, 2.0, 4.0]
    assert parts[1][1][0, 0, 0, :, 0, 0].tolist() == [3.0, 5.0]
    bank.add(6, WORKING, key, torch.full((1, 5, 3, 4), 6.0), [1])  # an entry without object 2: a gap
    bank.add(7, WORKING, key, torch.full((2, 5, 3, 4), 7.0), [1, 2])
    assert bank.read_groups([[1], [2]]) is None
