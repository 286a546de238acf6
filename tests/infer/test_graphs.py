"""The CUDA-graphed query encoder's CPU side: where it steps aside, and how the engine and a
prediction run take it (the graphs themselves are checked on a GPU, tests/gpu/test_cuda.py)."""

from __future__ import annotations

import json

import torch

from tests.conftest import make_video, person_masks
from tests.infer.conftest import random_frames, tiny_model, two_boxes
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.engine import InferenceEngine
from vcseg.infer.graphs import GraphedKeyEncoder, graphed_key_encoder
from vcseg.infer.options import PredictOptions


def test_off_cuda_the_models_own_encode_key_is_used():
    model = tiny_model()
    assert graphed_key_encoder(model) == model.encode_key  # the bound method itself: nothing wrapped
    prepared = tiny_model().for_prediction()
    assert prepared.prepared_for_prediction and not model.prepared_for_prediction
    assert graphed_key_encoder(prepared) == prepared.encode_key  # prepared, but on the CPU
    assert graphed_key_encoder(prepared, enabled=False) == prepared.encode_key


def test_a_graphed_encoder_runs_the_model_outside_inference_mode_and_off_cuda():
    """Training, validation under no_grad and CPU frames all take the model's own pass."""
    model = tiny_model()
    encoder = GraphedKeyEncoder(model)
    frame = torch.rand(1, 3, 32, 48)
    key, features = encoder(frame)  # grad mode, CPU
    with torch.inference_mode():
        key_inference, _ = encoder(frame)  # inference mode, but a CPU frame
    reference, _ = model.encode_key(frame)
    assert torch.equal(key, reference) and torch.equal(key_inference, reference)
    assert features.f4.shape[-2:] == (8, 12) and encoder.graphs == {}


def test_the_engine_encodes_keys_with_what_it_is_given():
    """Frame 0's key is encoded when its object starts (at commit), frames 1 and 2's at predict: three
    calls, all through the encoder handed over, with the same masks as the model's own."""
    model = tiny_model()
    calls = []

    def counted(frame):
        calls.append(tuple(frame.shape))
        return model.encode_key(frame)

    mask = torch.from_numpy(two_boxes(32, 48) == 1).float()
    results = []
    for encode_key in (counted, None):
        engine = InferenceEngine(model, mem_every=2, working_size=2, encode_key=encode_key)
        probs = []
        with torch.inference_mode():
            for t, frame in enumerate(random_frames(3, 32, 48)):
                image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
                probs.append(engine.step(image, {1: mask} if t == 0 else None))
        results.append(probs)
    assert calls == [(1, 3, 32, 48)] * 3
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_cuda_graphs_are_logged_and_left_out_of_the_runs_fingerprint(tmp_path, checkpoint):
    """--no-cuda-graphs changes no mask, so a rerun with it keeps the videos already predicted; the log
    says whether graphs ran (never on the CPU)."""
    data = tmp_path / "data"
    make_video(data, "a", person_masks(3))
    out = tmp_path / "pred"
    options = PredictOptions(size=32, mem_every=2, mem_size=2)
    assert predict_dataset(data, out, [checkpoint], data, options).predicted == ["a"]
    again = predict_dataset(data, out, [checkpoint], data, PredictOptions(size=32, mem_every=2, mem_size=2,
                                                                          cuda_graphs=False))
    assert again.skipped == ["a"] and again.predicted == []
    record = json.loads((out / ".predict_log.json").read_text())["videos"]["a"]
    assert record["cuda_graphs"] is False  # asked for, but the run was on the CPU
    changed = predict_dataset(data, out, [checkpoint], data, PredictOptions(size=32, mem_every=3, mem_size=2))
    assert changed.predicted == ["a"]  # a real change still predicts again
