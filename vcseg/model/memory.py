"""The memory read as small pure functions: affinity, top-k softmax, chunked weighted read.

Shapes: B batch, Ck key channels, Cv value channels, N memory positions (T frames x h x w),
M query positions (h x w). Affinity and softmax run in float32 whatever the autocast state:
in bf16/fp16 the logits' spread (hundreds) and the softmax's sums lose too much precision.

The read works query-major: a block of query positions against every memory position, B x m x N,
so that the softmax runs along contiguous memory and the weighted sum is one (m x N) @ (N x Cv)
product. On a CPU the blocks are at most CPU_READ_BLOCK query positions. Both measured on 2 cores
(bf16 values, 1620 query positions against 8 frames of memory): 0.055 s against 0.164 s for the
memory-major read in blocks of 1024 that it replaced (`python -m benchmarks.run model`).

On a CPU without gradients (prediction), objects that joined at different frames read different
runs of the memory, and each run's softmax comes from one shared exponential of the block
(`_shared_exp_reads`): measured on 2 cores, 5 groups of 7 objects against 9 frames of memory,
232 ms against 297 ms for a softmax per group.
"""

from __future__ import annotations

import math

import torch

from vcseg.config import AFFINITIES

# Query positions per block on a CPU: larger blocks leave the cache (measured 256 best of
# 128..1024 at 1 to 9 memory frames); a GPU reads in the caller's `chunk`.
CPU_READ_BLOCK = 256
# exp(-87) is about the smallest power of e a float32 holds as a normal number
EXP_FLOOR = -87.0
# A group whose weights sum below this (its best logit ~70 below the row's best) is read alone:
# N floor-clamped weights (N * e^-87) stay far below it for any memory this holds.
GROUP_SUM_FLOOR = math.exp(-70.0)


class _MemoryKeys:
    """The memory side of the affinity, computed once per read: logits = alpha q.k + bias.

    dot: alpha 1/sqrt(Ck), no bias. l2 (STCN's negative squared distance): alpha 2/sqrt(Ck) and a
    bias -|k|^2/sqrt(Ck) per memory position; the query's own squared norm is left out, as it is
    the same for every memory position of a query position and the softmax over them ignores it.
    """

    def __init__(self, mem_key: torch.Tensor, kind: str) -> None:
        if kind not in AFFINITIES:
            raise ValueError(f"affinity kind {kind!r} is not one of {AFFINITIES}")
        scale = 1.0 / math.sqrt(mem_key.shape[1])
        self.keys = mem_key.float()  # B, Ck, N
        self.alpha = 2 * scale if kind == "l2" else scale
        self.bias = (self.keys.pow(2).sum(dim=1) * -scale).unsqueeze(1) if kind == "l2" else None  # B, 1, N

    def logits(self, query_rows: torch.Tensor) -> torch.Tensor:
        """query_rows: B, m, Ck (float32) -> B, m, N."""
        if self.bias is None:
            return torch.bmm(query_rows, self.keys) * self.alpha
        return torch.baddbmm(self.bias, query_rows, self.keys, alpha=self.alpha)


def affinity(mem_key: torch.Tensor, query_key: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Similarity of every memory position to every query position, scaled by 1/sqrt(Ck).

    mem_key: B, Ck, N; query_key: B, Ck, M -> B, N, M (float32).
    "dot" is STM's dot product; "l2" is STCN's negative squared distance. For "l2" the query's own
    squared norm is left out: it is the same for every memory position of a query position, so the
    softmax over memory positions (dim 1) does not change.
    """
    with torch.autocast(device_type=mem_key.device.type, enabled=False):
        keys = _MemoryKeys(mem_key, kind)
        return keys.logits(query_key.float().transpose(1, 2)).transpose(1, 2)


def softmax_topk(logits: torch.Tensor, top_k: int = 0, dim: int = 1) -> torch.Tensor:
    """Softmax over memory positions (`dim`: 1 for B, N, M logits, -1 for B, M, N), over only the
    `top_k` largest per query position; the positions outside the top k get weight 0.

    Returns float32 weights of the logits' shape. top_k <= 0 or >= N is the plain softmax.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logits = logits.float()
        positions = logits.shape[dim]
        if top_k <= 0 or top_k >= positions:
            return torch.softmax(logits, dim=dim)
        values, indices = torch.topk(logits, k=top_k, dim=dim)
        weights = torch.softmax(values, dim=dim)
        return torch.zeros_like(logits).scatter_(dim, indices, weights)


def read_memory(mem_key: torch.Tensor, mem_value: torch.Tensor, query_key: torch.Tensor,
                kind: str = "l2", top_k: int = 0, chunk: int = 0) -> torch.Tensor:
    """The memory values read at each query position, weighted by the (top-k) softmax affinity.

    mem_key: B, Ck, N; mem_value: B, Cv, N; query_key: B, Ck, M -> B, Cv, M (mem_value's dtype).
    Query positions are read `chunk` at a time (0 = all at once; on a CPU at most
    CPU_READ_BLOCK), so the affinity held at once is B x N x chunk floats; every query position
    is independent, so chunking changes nothing else.
    """
    return read_memory_ranges(mem_key, [(0, mem_value)], query_key, kind, top_k, chunk)[0]


def read_memory_ranges(mem_key: torch.Tensor, mem_values: list[tuple[int, torch.Tensor]], query_key: torch.Tensor,
                       kind: str = "l2", top_k: int = 0, chunk: int = 0) -> list[torch.Tensor]:
    """Several reads of one query against parts of one memory, the affinity computed once.

    mem_values: (start, B, Cv_i, N_i values) pairs: read i is `read_memory` of memory positions
    start .. start + N_i - 1 only (its softmax runs over those). The inference engine reads
    objects that joined at different frames this way: each group over the entries holding it.
    Returns one B, Cv_i, M read per pair, in order.
    """
    positions, memory_positions = query_key.shape[2], mem_key.shape[2]
    for start, value in mem_values:
        if start < 0 or start + value.shape[2] > memory_positions:
            raise ValueError(f"values for memory positions {start}..{start + value.shape[2] - 1} of {memory_positions}")
    chunk = positions if chunk <= 0 else chunk
    if query_key.device.type == "cpu":
        chunk = min(chunk, CPU_READ_BLOCK)
    with torch.autocast(device_type=query_key.device.type, enabled=False):
        keys = _MemoryKeys(mem_key, kind)
        query_rows = query_key.float().transpose(1, 2)  # B, M, Ck
        value_rows = [(start, value.transpose(1, 2)) for start, value in mem_values]  # B, N_i, Cv_i
        # reading on a CPU without gradients: one exponential for every group (`_shared_exp_reads`)
        shared = top_k <= 0 and query_key.device.type == "cpu" and not torch.is_grad_enabled()
        counted_rows = [(start, torch.cat([rows, rows.new_ones(*rows.shape[:2], 1)], dim=2))
                        for start, rows in value_rows] if shared else []
        reads: list[list[torch.Tensor]] = [[] for _ in mem_values]
        for block in range(0, positions, chunk):
            logits = keys.logits(query_rows[:, block:block + chunk])  # B, m, N
            if shared:
                for read, blocks in zip(_shared_exp_reads(logits, counted_rows), reads):
                    blocks.append(read)
                continue
            for (start, rows), blocks in zip(value_rows, reads):
                blocks.append(_softmax_read(logits, start, rows, top_k))  # B, m, Cv_i
    return [(torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0]).transpose(1, 2)  # B, Cv_i, M
            for blocks in reads]


def _softmax_read(logits: torch.Tensor, start: int, rows: torch.Tensor, top_k: int = 0) -> torch.Tensor:
    """One group's read of a block of query rows: the (top-k) softmax of its own positions'
    logits, start .. start + N_i - 1, times its values. logits: B, m, N; rows: B, N_i, Cv_i -> B, m, Cv_i."""
    part = logits if rows.shape[1] == logits.shape[-1] else logits[:, :, start:start + rows.shape[1]]
    return torch.bmm(softmax_topk(part, top_k, dim=-1).to(rows.dtype), rows)


def _shared_exp_reads(logits: torch.Tensor, counted_rows: list[tuple[int, torch.Tensor]]) -> list[torch.Tensor]:
    """The reads of one block of query rows, every group's softmax made from one exponential.

    logits: B, m, N (float32); counted_rows: (start, B, N_i, Cv_i + 1 values with a last column
    of ones). exp(logits - row max) is taken once; each group's product with its values gives,
    in the ones column, its own softmax denominator, so a group's read is its weighted sums
    divided by that: the softmax over its positions, without normalising weights group by group.
    A row whose group's best logit lies so far below the row's best that the group's weights
    would underflow (their sum below GROUP_SUM_FLOOR) is read from that group's own softmax.
    """
    shifted = logits - logits.amax(dim=-1, keepdim=True)
    # Clamped at EXP_FLOOR: the exponential of anything lower is a denormal float32, which this
    # CPU code computes about 20 times slower, and a weight below e^-87 of the largest is nothing.
    weights = shifted.clamp_(min=EXP_FLOOR).exp_()
    cast: dict[torch.dtype, torch.Tensor] = {}
    reads = []
    for start, rows in counted_rows:
        if rows.dtype not in cast:
            cast[rows.dtype] = weights.to(rows.dtype)
        part = cast[rows.dtype][:, :, start:start + rows.shape[1]]  # B, m, N_i
        counted = torch.bmm(part, rows)  # B, m, Cv_i + 1: weighted sums, and the weights' sum
        sums = counted[:, :, -1:].float()
        read = (counted[:, :, :-1].float() / sums).to(rows.dtype)
        underflow = sums < GROUP_SUM_FLOOR  # B, m, 1
        if bool(underflow.any()):
            read = torch.where(underflow, _softmax_read(logits, start, rows[:, :, :-1]), read)
        reads.append(read)
    return reads


def affinity_bytes(batch: int, memory_positions: int, query_positions: int, chunk: int = 0) -> int:
    """Bytes of the float32 affinity and weight tensors alive at once during `read_memory` (on a
    GPU; a CPU reads in blocks of at most CPU_READ_BLOCK query positions, less than that).

    The logits and the softmax weights (B x N x chunk each) coexist; top-k adds less than that.
    """
    chunk = query_positions if chunk <= 0 else min(chunk, query_positions)
    return 2 * batch * memory_positions * chunk * 4
