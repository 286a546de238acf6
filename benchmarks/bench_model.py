"""Memory network figures: the memory read's time and memory, and one forward's time, fp32 vs bf16.

- Memory read at 480x854 input (stride 16 -> 30x54 = 1620 query positions), key_dim 64,
  value_dim 512, one object, for 1, 5, 10, 20 memory frames, chunked (read_chunk = 1024, the
  config default) and unchunked: median time and the affinity's peak bytes (logits + weights,
  computed analytically; on a GPU also torch.cuda's measured peak).
- One training-clip forward (B=1, 3 frames, 2 objects, no grad) of a resnet18 model at 384x384,
  fp32 vs bf16 autocast, on the CPU (and on the GPU when there is one).
"""

from __future__ import annotations


import torch

from benchmarks.timing import median_seconds
from vcseg.config import ModelConfig
from vcseg.model import MemoryNetwork
from vcseg.model.memory import affinity_bytes, read_memory

HEIGHT, WIDTH = 480, 854
PADDED_POSITIONS = 30 * 54  # 854 is padded to 864 by the caller: 30 x 54 positions at stride 16
KEY_DIM, VALUE_DIM, CHUNK = 64, 512, 1024
MEMORY_FRAMES = (1, 5, 10, 20)


def bench_memory_read(device: torch.device) -> None:
    print(f"memory read on {device}: 480x854 -> {PADDED_POSITIONS} positions, key {KEY_DIM}, value {VALUE_DIM}, "
          f"1 object, l2 affinity")
    print(f"{'frames':>6} {'chunk':>6} {'median ms':>10} {'affinity MiB':>13} {'cuda peak MiB':>14}")
    generator = torch.Generator().manual_seed(0)
    query_key = torch.randn(1, KEY_DIM, PADDED_POSITIONS, generator=generator).to(device)
    for frames in MEMORY_FRAMES:
        positions = frames * PADDED_POSITIONS
        mem_key = torch.randn(1, KEY_DIM, positions, generator=generator).to(device)
        mem_value = torch.randn(1, VALUE_DIM, positions, generator=generator).to(device)
        for chunk in (CHUNK, 0):
            def run() -> torch.Tensor:
                return read_memory(mem_key, mem_value, query_key, kind="l2", chunk=chunk)
            repeats = 5 if device.type == "cuda" or frames <= 5 else 3
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            seconds = median_seconds(run, repeats, device)
            peak = f"{(torch.cuda.max_memory_allocated(device) - base) / 2**20:14.1f}" if device.type == "cuda" else f"{'-':>14}"
            analytic = affinity_bytes(1, positions, PADDED_POSITIONS, chunk) / 2**20
            print(f"{frames:>6} {chunk or 'all':>6} {seconds * 1e3:10.1f} {analytic:13.1f} {peak}", flush=True)


def bench_forward(device: torch.device) -> None:
    torch.manual_seed(0)
    model = MemoryNetwork(ModelConfig(encoder="resnet18")).eval().to(device)
    frames = torch.rand(1, 3, 3, 384, 384, device=device)
    masks = torch.zeros(1, 2, 384, 384, device=device)
    masks[:, 0, 50:200, 40:180] = 1
    masks[:, 1, 150:350, 200:330] = 1
    print(f"forward of a 3-frame clip, 2 objects, resnet18 (key 64, value 512, decoder 256), 384x384, {device}:")
    results = {}
    for name, dtype in (("fp32", None), ("bf16 autocast", torch.bfloat16)):
        def run() -> torch.Tensor:
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                return model(frames, masks)
        results[name] = median_seconds(run, 3, device)
        print(f"  {name:>14}: {results[name] * 1e3:8.1f} ms per clip (median of 3)", flush=True)
    print(f"  bf16 / fp32 time ratio: {results['bf16 autocast'] / results['fp32']:.2f}")


def main() -> None:
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch threads: {torch.get_num_threads()}")
    for device in devices:
        bench_memory_read(device)
    for device in devices:
        bench_forward(device)


if __name__ == "__main__":
    main()
