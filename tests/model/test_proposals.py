"""The person proposal network: config checks, output shapes and strides, bf16, targets on
hand-made masks, the loss by hand, and a tiny network that learns to find two people."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vcseg.errors import VcsegError
from vcseg.infer.proposals import predict_proposals
from vcseg.model.proposal_targets import TargetSpec, instance_centres, make_targets
from vcseg.model.proposals import ProposalConfig, ProposalNetwork, loss_from_config, proposal_loss


def tiny(**changes) -> ProposalConfig:
    settings = dict(encoder="resnet18", decoder_channels=32, head_channels=16)
    settings.update(changes)
    return ProposalConfig(**settings)


# ---- config --------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"output_stride": 2}, "output_stride"), ({"nms_kernel": 4}, "nms_kernel"),
    ({"aspp_rates": (6, 12)}, "aspp_rates"), ({"decoder_channels": 0}, "decoder_channels"),
    ({"centre_sigma": 0.0}, "centre_sigma"), ({"bootstrap_fraction": 0.0}, "bootstrap_fraction"),
    ({"centre_threshold": 1.0}, "centre_threshold"), ({"encoder": ""}, "encoder"),
    ({"foreground_dice_weight": -1.0}, "foreground_dice_weight"),
])
def test_config_rejects_bad_values(changes, message) -> None:
    with pytest.raises(VcsegError, match=message):
        ProposalConfig(**changes)


def test_unknown_encoder_is_a_vcseg_error() -> None:
    with pytest.raises(VcsegError, match="cannot be built"):
        ProposalNetwork(tiny(encoder="no-such-encoder"))


# ---- the network ---------------------------------------------------------------------------------

def test_outputs_at_stride_four_and_one() -> None:
    torch.manual_seed(0)
    model = ProposalNetwork(tiny()).eval()
    frames = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        outputs = model(frames)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "foreground_logits": (2, 1, 16, 24), "centre_logits": (2, 1, 16, 24), "offsets": (2, 2, 16, 24)}
    full = ProposalNetwork(tiny(output_stride=1)).eval()
    full.load_state_dict(model.state_dict())
    with torch.no_grad():
        upsampled = full(frames)
    assert upsampled["offsets"].shape == (2, 2, 64, 96)
    # same weights: stride 1 is stride 4 upsampled, the offsets counted in 4x smaller pixels
    expected = torch.nn.functional.interpolate(outputs["offsets"], size=(64, 96), mode="bilinear",
                                               align_corners=False)
    torch.testing.assert_close(upsampled["offsets"], 4 * expected)
    torch.testing.assert_close(upsampled["centre_logits"], torch.nn.functional.interpolate(
        outputs["centre_logits"], size=(64, 96), mode="bilinear", align_corners=False))


def test_bf16_autocast_and_batch_of_one_training() -> None:
    model = ProposalNetwork(tiny()).train()
    frames = torch.rand(1, 3, 32, 48)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(frames)
    assert outputs["offsets"].dtype == torch.bfloat16 and outputs["offsets"].shape == (1, 2, 8, 12)
    targets = {k: v[None] for k, v in TargetSpec()(np.zeros((32, 48), np.uint8)).items()}
    loss, _ = proposal_loss(outputs, targets)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()  # batch of one: the ASPP's pooled branch must not batch-normalise a 1x1 map


def test_frames_must_be_padded_to_sixteen() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        ProposalNetwork(tiny())(torch.rand(1, 3, 40, 48))


# ---- targets -------------------------------------------------------------------------------------

def test_rectangle_targets_at_full_resolution() -> None:
    ids = np.zeros((32, 48), np.uint8)
    ids[4:13, 10:21] = 3  # 9 x 11 pixels, centre (8, 15)
    targets = make_targets(ids, stride=1, sigma=2.0, min_area=10)
    assert {k: v.shape for k, v in targets.items()} == {
        "foreground": (1, 32, 48), "foreground_weight": (1, 32, 48), "centre": (1, 32, 48),
        "centre_weight": (1, 32, 48), "offsets": (2, 32, 48), "offset_weight": (1, 32, 48)}
    assert np.array_equal(targets["foreground"][0], ids > 0)
    heat = targets["centre"][0]
    assert heat[8, 15] == 1.0 and np.unravel_index(heat.argmax(), heat.shape) == (8, 15)
    assert heat[8, 17] == pytest.approx(math.exp(-4 / 8)) and heat[11, 11] == pytest.approx(math.exp(-25 / 8))
    offsets = targets["offsets"]
    assert offsets[:, 4, 10].tolist() == [4.0, 5.0] and offsets[:, 12, 20].tolist() == [-4.0, -5.0]
    assert offsets[:, 8, 15].tolist() == [0.0, 0.0]
    ys, xs = np.nonzero(ids)
    # every instance pixel points at the centre; nothing else has an offset
    assert (ys + offsets[0, ys, xs] == 8).all() and (xs + offsets[1, ys, xs] == 15).all()
    assert np.array_equal(offsets[:, ids == 0], np.zeros((2, int((ids == 0).sum())), np.float32))
    assert np.array_equal(targets["offset_weight"][0], (ids > 0).astype(np.float32))
    assert (targets["centre_weight"] == 1).all() and (targets["foreground_weight"] == 1).all()


def test_targets_at_stride_four() -> None:
    ids = np.zeros((32, 48), np.uint8)
    ids[8:20, 16:36] = 1  # centre of mass (13.5, 25.5) -> output ((13.5 - 1.5) / 4, (25.5 - 1.5) / 4) = (3, 6)
    targets = make_targets(ids, stride=4, sigma=8.0, min_area=10)
    heat = targets["centre"][0]
    assert heat.shape == (8, 12) and heat[3, 6] == 1.0
    assert heat[3, 7] == pytest.approx(math.exp(-1 / 8))  # sigma 8 input px = 2 output px
    # output cell (i, j) samples input pixel (4i + 2, 4j + 2): rows 2..4, cols 4..8 are the person
    expected = np.zeros((8, 12), np.float32)
    expected[2:5, 4:9] = 1
    assert np.array_equal(targets["foreground"][0], expected)
    assert targets["offsets"][:, 2, 4].tolist() == [1.0, 2.0] and targets["offsets"][:, 4, 8].tolist() == [-1.0, -2.0]


def test_two_instances_heatmap_is_the_maximum() -> None:
    ids = np.zeros((40, 60), np.uint8)
    ids[2:9, 2:9] = 1  # centre (5, 5)
    ids[2:9, 12:19] = 2  # centre (5, 15)
    heat = make_targets(ids, stride=1, sigma=3.0, min_area=10)["centre"][0]
    assert heat[5, 5] == 1.0 and heat[5, 15] == 1.0
    g = lambda d2: math.exp(-d2 / 18)  # noqa: E731
    assert heat[5, 9] == pytest.approx(g(16))  # 4 from centre 1, 6 from centre 2
    assert heat[20, 10] == pytest.approx(max(g(15 ** 2 + 5 ** 2), g(15 ** 2 + 5 ** 2)))
    assert heat[5, 11] == pytest.approx(max(g(36), g(16)))


def test_small_instances_and_void_are_ignored() -> None:
    ids = np.zeros((32, 48), np.uint8)
    ids[4:14, 4:14] = 1  # 100 px
    ids[20:23, 30:33] = 2  # 9 px: too small
    ids[0:2, 40:48] = 255  # void
    targets = make_targets(ids, stride=1, sigma=2.0, min_area=10)
    small = ids == 2
    assert (targets["foreground"][0][small] == 1).all()  # still person pixels
    assert (targets["centre_weight"][0][small] == 0).all() and (targets["offset_weight"][0][small] == 0).all()
    assert targets["centre"][0][21, 31] < 1e-6  # no peak of its own
    void = ids == 255
    assert (targets["foreground"][0][void] == 0).all() and (targets["foreground_weight"][0][void] == 0).all()
    assert (targets["centre_weight"][0][void] == 0).all()
    assert targets["centre"][0].max() == 1.0 and targets["centre"][0][8, 8] == 1.0  # (4 + 13) / 2 = 8.5 -> 8
    assert set(instance_centres(ids)) == {1, 2}


def test_target_spec_returns_tensors_and_checks_sizes() -> None:
    spec = TargetSpec.from_config(ProposalConfig(output_stride=4, centre_sigma=4.0, target_min_area=5))
    assert spec == TargetSpec(stride=4, sigma=4.0, min_area=5)
    maps = spec(np.zeros((16, 32), np.uint8))
    assert maps["offsets"].dtype == torch.float32 and maps["offsets"].shape == (2, 4, 8)
    with pytest.raises(ValueError, match="multiple of the output stride"):
        spec(np.zeros((18, 32), np.uint8))


# ---- the loss ------------------------------------------------------------------------------------

def test_loss_parts_by_hand() -> None:
    ids = np.zeros((8, 12), np.uint8)
    ids[1:6, 2:7] = 1
    targets = {k: v[None] for k, v in TargetSpec(stride=1, sigma=1.0, min_area=1)(ids).items()}
    heat = targets["centre"].numpy()
    outputs = {"foreground_logits": torch.zeros(1, 1, 8, 12), "centre_logits": torch.zeros(1, 1, 8, 12),
               "offsets": torch.ones(1, 2, 8, 12)}
    total, parts = proposal_loss(outputs, targets, centre_weight=10.0, offset_weight=0.5)
    assert parts["foreground"].item() == pytest.approx(math.log(2))  # BCE of logit 0 against 0 or 1
    assert parts["centre"].item() == pytest.approx(10.0 * ((0.5 - heat) ** 2).mean(), rel=1e-5)
    target_offsets = targets["offsets"].numpy()[0][:, ids > 0]  # 2, 25
    assert parts["offset"].item() == pytest.approx(0.5 * np.abs(1.0 - target_offsets).mean(), rel=1e-5)
    assert total.item() == pytest.approx(sum(p.item() for p in parts.values()), rel=1e-6)
    # perfect outputs: no centre or offset loss
    logit = torch.logit(targets["centre"].clamp(1e-6, 1 - 1e-6))
    _, perfect = proposal_loss({**outputs, "centre_logits": logit, "offsets": targets["offsets"]}, targets)
    assert perfect["centre"].item() < 1e-6 and perfect["offset"].item() == 0.0


def test_bootstrapped_foreground_loss_averages_the_hardest_pixels() -> None:
    targets = {k: v[None] for k, v in TargetSpec(stride=1, min_area=1)(np.zeros((4, 4), np.uint8)).items()}
    logits = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4) - 8  # all should be background
    outputs = {"foreground_logits": logits, "centre_logits": torch.full((1, 1, 4, 4), -20.0),
               "offsets": torch.zeros(1, 2, 4, 4)}
    per_pixel = torch.nn.functional.softplus(logits.flatten())  # BCE of logit x against 0
    _, parts = proposal_loss(outputs, targets, bootstrap_fraction=0.25)
    assert parts["foreground"].item() == pytest.approx(per_pixel.sort().values[-4:].mean().item())
    _, parts = proposal_loss(outputs, targets)
    assert parts["foreground"].item() == pytest.approx(per_pixel.mean().item())


def test_foreground_dice_by_hand() -> None:
    # frame 0: a 5x5 person, predicted at 0.5 everywhere on 8x12 (one void pixel on the person,
    # which no term counts); frame 1: no person, predicted at 0.5 everywhere too
    ids = np.zeros((2, 8, 12), np.uint8)
    ids[0, 1:6, 2:7] = 1
    ids[0, 1, 2] = 255
    spec = TargetSpec(stride=1, sigma=1.0, min_area=1)
    targets = {k: torch.stack([spec(frame)[k] for frame in ids]) for k in spec(ids[0])}
    outputs = {"foreground_logits": torch.zeros(2, 1, 8, 12), "centre_logits": torch.zeros(2, 1, 8, 12),
               "offsets": torch.zeros(2, 2, 8, 12)}
    _, plain = proposal_loss(outputs, targets)
    _, with_dice = proposal_loss(outputs, targets, dice_weight=2.0)
    person_dice = (2 * 0.5 * 24 + 1) / (0.5 * 95 + 24 + 1)  # 95 valid pixels, 24 of them person
    empty_dice = 1 / (0.5 * 96 + 1)
    expected = 1 - (person_dice + empty_dice) / 2
    assert with_dice["foreground"].item() == pytest.approx(plain["foreground"].item() + 2.0 * expected, rel=1e-6)
    # the loss_from_config path carries the weight
    _, from_config = loss_from_config(outputs, targets, tiny(foreground_dice_weight=2.0))
    assert from_config["foreground"].item() == pytest.approx(with_dice["foreground"].item())
    # a perfect foreground has (almost) no dice loss
    perfect = torch.where(targets["foreground"] > 0, 20.0, -20.0)
    _, parts = proposal_loss({**outputs, "foreground_logits": perfect}, targets, dice_weight=1.0)
    assert parts["foreground"].item() < 1e-6


def test_loss_refuses_targets_at_another_resolution() -> None:
    targets = {k: v[None] for k, v in TargetSpec(stride=1)(np.zeros((8, 8), np.uint8)).items()}
    outputs = {"foreground_logits": torch.zeros(1, 1, 2, 2), "centre_logits": torch.zeros(1, 1, 2, 2),
               "offsets": torch.zeros(1, 2, 2, 2)}
    with pytest.raises(ValueError, match="output stride"):
        proposal_loss(outputs, targets)


# ---- learning --------------------------------------------------------------------------------------

def two_people(height: int = 64, width: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A red standing rectangle and a blue ellipse over grey noise: (H, W, 3) uint8, (H, W) ids."""
    rng = np.random.default_rng(0)
    frame = rng.integers(60, 140, (height, width, 3)).astype(np.uint8)
    ids = np.zeros((height, width), np.uint8)
    ids[8:56, 10:34] = 1
    ys, xs = np.mgrid[:height, :width]
    ids[((ys - 36) / 24.0) ** 2 + ((xs - 66) / 14.0) ** 2 <= 1] = 2
    frame[ids == 1] = (220, 60, 50)
    frame[ids == 2] = (40, 70, 210)
    return frame, ids


def best_ious(proposals, ids: np.ndarray) -> list[float]:
    return [max([float((p.mask & (ids == k)).sum() / (p.mask | (ids == k)).sum()) for p in proposals] or [0.0])
            for k in (1, 2)]


@pytest.mark.slow
def test_tiny_network_learns_to_find_two_people() -> None:
    torch.manual_seed(0)
    frame, ids = two_people()
    config = tiny(min_proposal_area=50)
    model = ProposalNetwork(config)
    targets = {k: v[None] for k, v in TargetSpec.from_config(config)(ids).items()}
    image = torch.from_numpy(frame.transpose(2, 0, 1)).float()[None] / 255
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    proposals, first_loss = [], None
    for step in range(1, 201):  # bounded; checked every 10 steps (found by ~30-60 steps, ~0.1 s each)
        loss, _ = loss_from_config(model(image), targets, config)
        first_loss = first_loss if first_loss is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            proposals = predict_proposals(model, frame)
            if len(proposals) == 2 and min(best_ious(proposals, ids)) > 0.8:
                break
    assert loss.item() < 0.5 * first_loss
    assert len(proposals) == 2, [(p.area, p.score) for p in proposals]
    assert min(best_ious(proposals, ids)) > 0.8
    assert all(0.0 < p.score <= 1.0 for p in proposals) and proposals[0].score >= proposals[1].score
    # each proposal's centre lies inside the person it found
    for proposal in proposals:
        y, x = (int(round(c)) for c in proposal.centre)
        assert ids[y, x] != 0 and proposal.mask[y, x]
