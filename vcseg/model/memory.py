"""The memory read as small pure functions: affinity, top-k softmax, chunked weighted read.

Shapes: B batch, Ck key channels, Cv value channels, N memory positions (T frames x h x w),
M query positions (h x w). Affinity and softmax run in float32 whatever the autocast state:
in bf16/fp16 the logits' spread (hundreds) and the softmax's sums lose too much precision.
"""

from __future__ import annotations

import math

import torch

from vcseg.config import AFFINITIES


def affinity(mem_key: torch.Tensor, query_key: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Similarity of every memory position to every query position, scaled by 1/sqrt(Ck).

    mem_key: B, Ck, N; query_key: B, Ck, M -> B, N, M (float32).
    "dot" is STM's dot product; "l2" is STCN's negative squared distance. For "l2" the query's own
    squared norm is left out: it is the same for every memory position of a query position, so the
    softmax over memory positions (dim 1) does not change.
    """
    if kind not in AFFINITIES:
        raise ValueError(f"affinity kind {kind!r} is not one of {AFFINITIES}")
    key_dim = mem_key.shape[1]
    with torch.autocast(device_type=mem_key.device.type, enabled=False):
        mem_key = mem_key.float()
        similarity = mem_key.transpose(1, 2) @ query_key.float()  # B, N, M
        if kind == "l2":
            mem_norm = mem_key.pow(2).sum(dim=1).unsqueeze(2)  # B, N, 1
            similarity = 2 * similarity - mem_norm
        return similarity / math.sqrt(key_dim)


def softmax_topk(logits: torch.Tensor, top_k: int = 0) -> torch.Tensor:
    """Softmax over memory positions (dim 1), over only the `top_k` largest per query position.

    logits: B, N, M -> weights B, N, M (float32); the positions outside the top k get weight 0.
    top_k <= 0 or >= N is the plain softmax.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logits = logits.float()
        positions = logits.shape[1]
        if top_k <= 0 or top_k >= positions:
            return torch.softmax(logits, dim=1)
        values, indices = torch.topk(logits, k=top_k, dim=1)  # B, k, M
        weights = torch.softmax(values, dim=1)
        return torch.zeros_like(logits).scatter_(1, indices, weights)


def read_memory(mem_key: torch.Tensor, mem_value: torch.Tensor, query_key: torch.Tensor,
                kind: str = "l2", top_k: int = 0, chunk: int = 0) -> torch.Tensor:
    """The memory values read at each query position, weighted by the (top-k) softmax affinity.

    mem_key: B, Ck, N; mem_value: B, Cv, N; query_key: B, Ck, M -> B, Cv, M (mem_value's dtype).
    Query positions are read `chunk` at a time (0 = all at once), so the affinity held at once is
    B x N x chunk floats; every query position is independent, so chunking changes nothing else.
    """
    positions = query_key.shape[2]
    chunk = positions if chunk <= 0 else chunk
    reads = []
    with torch.autocast(device_type=mem_value.device.type, enabled=False):
        for start in range(0, positions, chunk):
            logits = affinity(mem_key, query_key[:, :, start:start + chunk], kind)  # B, N, m
            weights = softmax_topk(logits, top_k).to(mem_value.dtype)  # B, N, m
            reads.append(torch.bmm(mem_value, weights))  # B, Cv, m
    return torch.cat(reads, dim=2) if len(reads) > 1 else reads[0]


def affinity_bytes(batch: int, memory_positions: int, query_positions: int, chunk: int = 0) -> int:
    """Bytes of the float32 affinity and weight tensors alive at once during `read_memory`.

    The logits and the softmax weights (B x N x chunk each) coexist; top-k adds less than that.
    """
    chunk = query_positions if chunk <= 0 else min(chunk, query_positions)
    return 2 * batch * memory_positions * chunk * 4
