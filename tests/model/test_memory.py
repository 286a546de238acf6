"""The memory read against direct computations on small tensors."""

from __future__ import annotations

import math

import pytest
import torch

from vcseg.model.memory import affinity, affinity_bytes, read_memory, softmax_topk

B, CK, CV, N, M = 2, 8, 5, 30, 20


@pytest.fixture
def tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    mem_key = torch.randn(B, CK, N, generator=generator)
    mem_value = torch.randn(B, CV, N, generator=generator)
    query_key = torch.randn(B, CK, M, generator=generator)
    return mem_key, mem_value, query_key


def direct_weights(mem_key: torch.Tensor, query_key: torch.Tensor, kind: str) -> torch.Tensor:
    """Softmax over memory positions of the full similarity, written out with einsum / cdist."""
    if kind == "dot":
        similarity = torch.einsum("bcn,bcm->bnm", mem_key, query_key)
    else:  # negative squared distance, query norm included
        similarity = -torch.cdist(mem_key.transpose(1, 2), query_key.transpose(1, 2)).pow(2)
    return torch.softmax(similarity / math.sqrt(mem_key.shape[1]), dim=1)


def test_dot_affinity_is_the_scaled_dot_product(tensors):
    mem_key, _, query_key = tensors
    expected = torch.einsum("bcn,bcm->bnm", mem_key, query_key) / math.sqrt(CK)
    torch.testing.assert_close(affinity(mem_key, query_key, "dot"), expected)


def test_l2_affinity_differs_from_distance_by_a_per_query_constant(tensors):
    mem_key, _, query_key = tensors
    distance = -torch.cdist(mem_key.transpose(1, 2), query_key.transpose(1, 2)).pow(2) / math.sqrt(CK)
    offset = affinity(mem_key, query_key, "l2") - distance  # B, N, M: the query norm / sqrt(Ck)
    expected_offset = query_key.pow(2).sum(1, keepdim=True).expand(B, N, M) / math.sqrt(CK)
    torch.testing.assert_close(offset, expected_offset, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["dot", "l2"])
def test_read_equals_einsum_and_softmax(tensors, kind):
    mem_key, mem_value, query_key = tensors
    expected = torch.einsum("bcn,bnm->bcm", mem_value, direct_weights(mem_key, query_key, kind))
    result = read_memory(mem_key, mem_value, query_key, kind=kind)
    assert result.shape == (B, CV, M)
    torch.testing.assert_close(result, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 7, M, 100])
@pytest.mark.parametrize("top_k", [0, 4])
def test_chunked_read_equals_unchunked(tensors, chunk, top_k):
    mem_key, mem_value, query_key = tensors
    whole = read_memory(mem_key, mem_value, query_key, top_k=top_k, chunk=0)
    torch.testing.assert_close(read_memory(mem_key, mem_value, query_key, top_k=top_k, chunk=chunk), whole)


def test_top_k_of_all_positions_is_the_plain_softmax(tensors):
    mem_key, _, query_key = tensors
    logits = affinity(mem_key, query_key)
    torch.testing.assert_close(softmax_topk(logits, top_k=N), torch.softmax(logits, dim=1))
    torch.testing.assert_close(softmax_topk(logits, top_k=0), torch.softmax(logits, dim=1))


def test_top_k_keeps_the_k_largest_and_zeroes_the_rest():
    logits = torch.tensor([[[1.0, 5.0], [3.0, 0.0], [2.0, 4.0], [0.5, 1.0]]])  # B=1, N=4, M=2
    weights = softmax_topk(logits, top_k=2)
    # column 0 keeps positions 1 (3.0) and 2 (2.0); column 1 keeps 0 (5.0) and 2 (4.0)
    e = math.e
    expected = torch.tensor([[[0.0, e / (e + 1)], [e / (e + 1), 0.0], [1 / (e + 1), 1 / (e + 1)], [0.0, 0.0]]])
    torch.testing.assert_close(weights, expected)


def test_top_k_read_uses_only_the_nearest_memory_positions():
    mem_key = torch.tensor([[[0.0, 1.0, 2.0]]])  # B=1, Ck=1, N=3
    mem_value = torch.tensor([[[1.0, 2.0, 100.0]]])  # the far position holds a large value
    query_key = torch.tensor([[[0.5]]])  # equidistant from positions 0 and 1
    assert read_memory(mem_key, mem_value, query_key, kind="l2", top_k=2).item() == pytest.approx(1.5)
    # all positions: logits -0.25, -0.25, -2.25 -> the far one weighs e^-2 / (2 + e^-2)
    far = math.exp(-2) / (2 + math.exp(-2))
    expected = (1 - far) * 1.5 + far * 100.0
    assert read_memory(mem_key, mem_value, query_key, kind="l2", top_k=0).item() == pytest.approx(expected, rel=1e-5)


def test_low_precision_keys_are_matched_in_float32(tensors):
    mem_key, mem_value, query_key = tensors
    mem_key16, query_key16 = mem_key.bfloat16(), query_key.bfloat16()
    result = affinity(mem_key16, query_key16, "dot")
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, affinity(mem_key16.float(), query_key16.float(), "dot"))


def test_read_under_bf16_autocast_is_close_to_float32(tensors):
    mem_key, mem_value, query_key = tensors
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = read_memory(mem_key, mem_value, query_key)
    assert low.dtype == torch.float32  # fp32 values stay fp32: the read itself is not downcast
    torch.testing.assert_close(low, read_memory(mem_key, mem_value, query_key))


def test_affinity_bytes_counts_the_logits_and_weights(tensors):
    mem_key, _, query_key = tensors
    logits = affinity(mem_key, query_key[:, :, :7])
    weights = softmax_topk(logits)
    assert affinity_bytes(B, N, M, chunk=7) == logits.nbytes + weights.nbytes
    assert affinity_bytes(B, N, M, chunk=0) == 2 * B * N * M * 4


@pytest.mark.parametrize("top_k", [0, 3])
def test_read_of_many_query_positions_in_cpu_blocks_equals_the_direct_read(top_k):
    """More query positions than a CPU block: the blocks together read what one product reads."""
    from vcseg.model.memory import CPU_READ_BLOCK

    generator = torch.Generator().manual_seed(1)
    positions = 2 * CPU_READ_BLOCK + 3
    mem_key, mem_value = torch.randn(1, CK, N, generator=generator), torch.randn(1, CV, N, generator=generator)
    query_key = torch.randn(1, CK, positions, generator=generator)
    weights = softmax_topk(affinity(mem_key, query_key), top_k)  # B, N, M: one block, memory-major
    expected = torch.einsum("bcn,bnm->bcm", mem_value, weights)
    torch.testing.assert_close(read_memory(mem_key, mem_value, query_key, top_k=top_k), expected,
                               rtol=1e-4, atol=1e-5)


def test_top_k_along_the_last_dimension_is_the_transpose(tensors):
    mem_key, _, query_key = tensors
    logits = affinity(mem_key, query_key)  # B, N, M
    torch.testing.assert_close(softmax_topk(logits.transpose(1, 2), top_k=4, dim=-1),
                               softmax_topk(logits, top_k=4).transpose(1, 2))


@pytest.mark.parametrize("top_k", [0, 3])
@pytest.mark.parametrize("chunk", [0, 7])
def test_reads_of_memory_ranges_equal_reads_of_those_positions_alone(tensors, top_k, chunk):
    """One affinity for several reads: each equals reading its own positions' keys and values."""
    from vcseg.model.memory import read_memory_ranges

    mem_key, mem_value, query_key = tensors
    ranges = [(0, mem_value), (10, mem_value[:, :3, 10:]), (12, mem_value[:, :, 12:25])]
    reads = read_memory_ranges(mem_key, ranges, query_key, top_k=top_k, chunk=chunk)
    for (start, value), read in zip(ranges, reads):
        alone = read_memory(mem_key[:, :, start:start + value.shape[2]], value, query_key, top_k=top_k)
        assert read.shape == (B, value.shape[1], M)
        torch.testing.assert_close(read, alone)


def test_a_range_past_the_memory_is_refused(tensors):
    from vcseg.model.memory import read_memory_ranges

    mem_key, mem_value, query_key = tensors
    with pytest.raises(ValueError, match="memory positions 5..34 of 30"):
        read_memory_ranges(mem_key, [(5, mem_value)], query_key)


def _direct_read(mem_key: torch.Tensor, mem_value: torch.Tensor, query_key: torch.Tensor) -> torch.Tensor:
    """The l2 read written out: softmax of -|k - q|^2 / sqrt(Ck) over memory positions, in float64."""
    weights = direct_weights(mem_key.double(), query_key.double(), "l2")  # B, N, M
    return torch.einsum("bcn,bnm->bcm", mem_value.double(), weights)


def test_reads_without_gradients_share_one_exponential_and_equal_the_direct_reads(tensors):
    """On a CPU without gradients every group's softmax comes from one exponential, each
    normalised by its own sum: each read is still the softmax read of its own positions."""
    from vcseg.model.memory import read_memory_ranges

    mem_key, mem_value, query_key = tensors
    ranges = [(0, mem_value), (10, mem_value[:, :3, 10:]), (12, mem_value[:, :, 12:25])]
    with torch.no_grad():
        reads = read_memory_ranges(mem_key, ranges, query_key, chunk=7)
    for (start, value), read in zip(ranges, reads):
        expected = _direct_read(mem_key[:, :, start:start + value.shape[2]], value, query_key)
        torch.testing.assert_close(read.double(), expected, rtol=1e-5, atol=1e-6)


def test_a_group_far_below_the_best_match_is_read_alone_not_as_uniform_weights(tensors):
    """Keys that make one group's logits ~100 below the row's best would underflow in the shared
    exponential (every weight clamped alike): that block is read group by group instead."""
    from vcseg.model.memory import read_memory_ranges

    mem_key, mem_value, query_key = tensors
    mem_key = mem_key.clone()
    query_key = query_key * 0 + 3.0
    mem_key[:, :, :10] = 3.0  # positions 0..9 match every query exactly (distance 0)
    mem_key[:, :, 10:] = -3.0 + 0.3 * mem_key[:, :, 10:]  # the rest ~ distance 36 per channel, x8 / sqrt(8)
    group = (10, mem_value[:, :, 10:])
    with torch.no_grad():
        (read,) = read_memory_ranges(mem_key, [group], query_key)
        both = read_memory_ranges(mem_key, [(0, mem_value), group], query_key)
    expected = _direct_read(mem_key[:, :, 10:], group[1], query_key)
    torch.testing.assert_close(read.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(both[1].double(), expected, rtol=1e-5, atol=1e-6)
    uniform = group[1].double().mean(dim=2, keepdim=True).expand_as(expected)
    assert not torch.allclose(expected, uniform, atol=1e-3)  # the case tests something


def test_bf16_values_read_without_gradients_stay_close_to_the_float32_read(tensors):
    from vcseg.model.memory import read_memory_ranges

    mem_key, mem_value, query_key = tensors
    with torch.no_grad():
        (low,) = read_memory_ranges(mem_key, [(0, mem_value.bfloat16())], query_key)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.double(), _direct_read(mem_key, mem_value, query_key), rtol=2e-2, atol=2e-2)
