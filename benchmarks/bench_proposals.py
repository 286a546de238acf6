"""Proposal network figures: one frame's forward at 480x854 (padded to 480x864), resnet18,
decoder 256 / heads 64 (the config defaults), on the CPU fp32 vs bf16 autocast (and the GPU
when there is one); then the post-processing alone (peaks, resampling to 480x854, grouping) on
maps with 4 people, and `predict_proposals` end to end on the CPU in fp32. Then the recall of
weights/default.pt's proposal network, beside the previous default weights', on real footage no
training saw (the discovery benchmark's 8 compositions of the held-out DAVIS sequences, every 5th
frame; see `benchmarks.held_out`): the share of person-frames that some proposal covers with IoU
0.5 or more, at two input sizes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

# proposal_recall lives in held_out (as bench_discovery and bench_tracking need it too, and
# importing it from this module there would make bench_discovery and this module import each other)
from benchmarks.held_out import (DAVIS, HELD_OUT, HELD_OUT_COMPOSITIONS, WEIGHTS, compared_weights,
                                 held_out_compositions, proposal_recall)
from benchmarks.timing import median_seconds
from vcseg.errors import VcsegError
from vcseg.infer.discovery import network_proposer
from vcseg.infer.proposals import postprocess, predict_proposals
from vcseg.io.layouts import find_dataset
from vcseg.model.checkpoint import load_proposal_network
from vcseg.model.proposal_targets import make_targets
from vcseg.model.proposals import ProposalConfig, ProposalNetwork

HEIGHT, WIDTH = 480, 854
PADDED = (480, 864)


def bench_forward(device: torch.device, repeats: int) -> None:
    torch.manual_seed(0)
    model = ProposalNetwork(ProposalConfig(encoder="resnet18")).eval().to(device)
    frames = torch.rand(1, 3, *PADDED, device=device)
    results = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        def run() -> dict[str, torch.Tensor]:
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.bfloat16,
                                                        enabled=dtype is not None):
                return model(frames)
        results[name] = median_seconds(run, repeats, device)
        print(f"forward {device.type} {name}: {1000 * results[name]:8.1f} ms (median of {repeats})")
    print(f"forward {device.type} bf16 / fp32 time ratio: {results['bf16'] / results['fp32']:.2f}")


def people_maps() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Perfect stride-4 maps of 4 rectangular people on the padded 480x864 input."""
    ids = np.zeros(PADDED, np.uint8)
    for k, (top, left, height, width) in enumerate([(60, 40, 380, 150), (100, 260, 340, 120),
                                                    (40, 460, 420, 170), (200, 680, 250, 110)], start=1):
        ids[top:top + height, left:left + width] = k
    targets = make_targets(ids, stride=4, sigma=8.0, min_area=100)
    foreground = torch.from_numpy(targets["foreground"][0] * 0.9 + 0.05)
    return foreground, torch.from_numpy(targets["centre"][0]), torch.from_numpy(targets["offsets"])


def bench_postprocess(repeats: int) -> None:
    """At torch's thread count and at 1 thread: these element-wise ops are memory-bound, and on a
    busy machine extra threads can cost far more than they give."""
    foreground, centre, offsets = people_maps()
    found = []
    threads = torch.get_num_threads()
    for count in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(count)
        try:
            def run() -> None:
                found[:] = postprocess(foreground, centre, offsets, stride=4, content_size=(HEIGHT, WIDTH),
                                       target_size=(HEIGHT, WIDTH))
            seconds = median_seconds(run, repeats, torch.device("cpu"))
            print(f"post-process 120x216 maps -> 480x854, {len(found)} people, {count} thread(s): "
                  f"{1000 * seconds:6.1f} ms (median of {repeats})")
            seconds = median_seconds(lambda: postprocess(foreground, centre, offsets, stride=4,
                                                          content_size=(HEIGHT, WIDTH), target_size=(1080, 1920)),
                                      repeats, torch.device("cpu"))
            print(f"post-process 120x216 maps -> 1080x1920, {count} thread(s): {1000 * seconds:6.1f} ms")
        finally:
            torch.set_num_threads(threads)


def bench_predict(repeats: int) -> None:
    torch.manual_seed(0)
    model = ProposalNetwork(ProposalConfig(encoder="resnet18"))
    frame = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    seconds = median_seconds(lambda: predict_proposals(model, frame), repeats, torch.device("cpu"))
    print(f"predict_proposals cpu fp32 480x854 frame (random weights): {1000 * seconds:8.1f} ms")


def bench_recall() -> None:
    if not DAVIS.is_dir() or not WEIGHTS.is_file():
        print("recall on real footage: needs weights/default.pt with a proposal network and the shared DAVIS data")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = compared_weights(tmp)
        dataset = find_dataset(held_out_compositions(tmp / "davis"))  # the discovery benchmark's set
        for label, path in weights:
            try:
                model, _ = load_proposal_network(path)
            except VcsegError as error:  # weights without a proposal network
                print(f"recall on real footage, {label} weights: {error}")
                continue
            for size in (160, 240):
                recall = proposal_recall(dataset, lambda video, size=size: network_proposer(model, size))
                print(f"{label:<8} weights' proposals, recall at IoU 0.5 on {HELD_OUT_COMPOSITIONS.videos} "
                      f"compositions of {' + '.join(HELD_OUT)}, short side {size}: {recall:.3f}")


def main() -> None:
    bench_forward(torch.device("cpu"), repeats=3)
    if torch.cuda.is_available():
        bench_forward(torch.device("cuda"), repeats=20)
    bench_postprocess(repeats=5)
    bench_predict(repeats=3)
    bench_recall()


if __name__ == "__main__":
    main()
