"""The GPU paths on a real GPU (skipped without CUDA; `make gpu-check` runs them on one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.infer.conftest import TINY, random_frames, two_boxes
from tests.train.conftest import tiny_config
from vcseg.infer.graphs import GraphedKeyEncoder, graphed_key_encoder
from vcseg.infer.options import PredictOptions
from vcseg.infer.propagate import predict_video
from vcseg.model.network import MemoryNetwork
from vcseg.model.precision import autocast_dtype
from vcseg.train.checkpoint import rng_state, set_rng_state
from vcseg.train.loop import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cuda_rng_state_round_trips_on_the_last_gpu():
    device = torch.device("cuda", torch.cuda.device_count() - 1)
    state = rng_state(device)
    first = torch.rand(4, device=device)
    set_rng_state(state, device)
    assert torch.equal(torch.rand(4, device=device), first)


def test_auto_precision_matches_the_gpu():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else None
    assert autocast_dtype("auto", torch.device("cuda", 0)) == expected


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_deterministic_gpu_training_resumes_exactly(tiny_videos, tmp_path, precision):
    config = tiny_config(tiny_videos, "train.steps=4", "train.checkpoint_every=1000", "train.device=cuda",
                         f"train.precision={precision}", "train.deterministic=true")
    straight = [r.loss for r in train(config, tmp_path / "a").history]
    first = train(config, tmp_path / "b", stop_after=2)
    resumed = train(None, tmp_path / "b", resume=True)
    assert [r.loss for r in first.history + resumed.history] == straight


def test_fp16_cpu_run_resumes_on_the_gpu(tiny_videos, tmp_path, monkeypatch):
    config = tiny_config(tiny_videos, "train.steps=3", "train.device=auto", "train.precision=fp16")
    with monkeypatch.context() as cpu_only:
        cpu_only.setattr(torch.cuda, "is_available", lambda: False)
        train(config, tmp_path / "run", stop_after=1)  # on the CPU: a disabled GradScaler, saved empty
    resumed = train(None, tmp_path / "run", resume=True)  # on the GPU: an enabled one
    assert resumed.steps_done == 3


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graphed_key_encoder_gives_the_models_values(precision):
    """Two shapes in turn: each captured once and replayed after, every output the eager pass's
    to the bit, and each call's outputs its own (a later replay does not overwrite them)."""
    torch.manual_seed(0)
    model = MemoryNetwork(TINY).cuda().for_prediction()
    encoder = graphed_key_encoder(model)
    assert isinstance(encoder, GraphedKeyEncoder) and graphed_key_encoder(model) is encoder
    trainable = MemoryNetwork(TINY).cuda()  # not prepared for prediction: its weights may move, no graphs
    assert graphed_key_encoder(trainable) == trainable.encode_key
    frames = [torch.rand(1, 3, h, w, device="cuda") for h, w in ((64, 96), (64, 96), (96, 64), (64, 96))]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=precision == "bf16"):
        graphed = [encoder(frame) for frame in frames]
        eager = [model.encode_key(frame) for frame in frames]
    for (key, features), (eager_key, eager_features) in zip(graphed, eager):
        assert key.dtype == eager_key.dtype and torch.equal(key, eager_key)
        for name in ("f16", "f8", "f4", "value"):
            assert torch.equal(getattr(features, name), getattr(eager_features, name))
    assert len(encoder.graphs) == 2


def test_predicted_masks_are_the_same_with_and_without_cuda_graphs():
    """Flip and two scales: three engines per frame share the model's graphs (two shapes)."""
    torch.manual_seed(0)
    model = MemoryNetwork(TINY).cuda().for_prediction()
    frames, first = random_frames(6, 64, 96), two_boxes(64, 96)
    masks = {graphs: predict_video([model], frames, {0: first},
                                   PredictOptions(size=64, scales=(0.75, 1.0), flip=True, device="cuda",
                                                  precision="bf16", cuda_graphs=graphs))
             for graphs in (True, False)}
    assert len(graphed_key_encoder(model).graphs) == 2  # the graphs did run
    assert all(np.array_equal(a, b) for a, b in zip(masks[True], masks[False]))
