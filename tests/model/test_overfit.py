"""A tiny model learns a tiny clip: the whole training path (memory, decoder, aggregation) works."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.model.conftest import tiny_config, two_squares
from vcseg.model import MemoryNetwork

STEPS = 100


def jaccard(prediction: torch.Tensor, target: torch.Tensor, object_id: int) -> float:
    predicted, truth = prediction == object_id, target == object_id
    return ((predicted & truth).sum() / (predicted | truth).sum()).item()


@pytest.mark.slow  # about 10 s on an idle 2-core CPU, longer when the machine is busy
def test_tiny_model_overfits_a_three_frame_clip():
    torch.manual_seed(0)
    model = MemoryNetwork(tiny_config(key_dim=16, value_dim=32, decoder_dim=32))
    frames, ids = two_squares(frames=3, size=48)  # 1, 3, 3, 48, 48 and 3, 48, 48
    first_masks = torch.stack([(ids[0] == k).float() for k in (1, 2)]).unsqueeze(0)  # 1, 2, 48, 48
    target = ids[1:].unsqueeze(0)  # 1, 2, 48, 48: ids of the predicted frames
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(STEPS):
        logits = model(frames, first_masks)  # 1, 2, 3, 48, 48
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(0, 1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5
    model.eval()
    with torch.no_grad():
        prediction = model(frames, first_masks).argmax(dim=2)[0]  # 2, 48, 48
    for object_id in (1, 2):
        assert jaccard(prediction, target[0], object_id) > 0.9
