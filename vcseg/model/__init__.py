"""The space-time memory network: encoders, memory read, decoder, soft aggregation."""

from vcseg.model.aggregate import other_objects, soft_aggregate
from vcseg.model.memory import affinity, read_memory, softmax_topk
from vcseg.model.network import STRIDE, MemoryNetwork, QueryFeatures, build_model

__all__ = ["STRIDE", "MemoryNetwork", "QueryFeatures", "affinity", "build_model", "other_objects",
           "read_memory", "soft_aggregate", "softmax_topk"]
