"""Input normalisation from the config: resolved from the encoder's weights, applied wherever frames
enter a network, and kept by checkpoints that predate it (ImageNet statistics, bit for bit)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.model.conftest import tiny_config
from vcseg.config import Config, ModelConfig, ProposalConfig, load_config
from vcseg.errors import VcsegError
from vcseg.infer.proposals import padding_colour
from vcseg.io.frames import IMAGENET_MEAN_RGB
from vcseg.model.checkpoint import load_memory_network, load_proposal_network
from vcseg.model.network import MemoryNetwork
from vcseg.model.pretrained import IMAGENET_MEAN, IMAGENET_STD, input_normalisation, with_input_normalisation
from vcseg.model.proposals import ProposalNetwork

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "default.pt"
# weights/default.pt as committed before input_mean / input_std existed, and what it computed then
# (code of commit 67fb529) on the input of `_fixed_input`:
OLD_DEFAULT_SHA256 = "8d983f37a667f99ed942193ddfad57ca2e9f7d437d74a551ee376c87f19a6847"
OLD_MEMORY_LOGITS = [3.29994, 2.27557, 1.73478, 3.36776, 4.24131, 3.34676, 3.34651, 4.47721, 3.73729, 3.50407,
                     2.96518, 4.3278]  # channel 0 of logits[0, 0, :, ::16, ::16]; channel 1 is its negative
OLD_PROPOSAL_MAPS = {"foreground_logits": [-1.31036, 0.95287, 0.98172, 1.25789, 0.79724, 1.17361, 1.92103, 0.77849],
                     "centre_logits": [-4.27208, -5.44819, -5.35852, -5.27015, -3.58608, -3.52309, -3.63913, -3.71029],
                     "offsets": [5.77368, 9.85884, 10.59925, 9.94902, 4.64322, 5.29709, 5.46128, 4.80233]}


def _fixed_input() -> tuple[torch.Tensor, torch.Tensor]:
    frames = torch.rand(1, 2, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(1, 1, 48, 64)
    masks[:, :, 10:30, 20:40] = 1
    return frames, masks


# ---- resolution and config -----------------------------------------------------------------------

def test_resolved_from_the_encoder_and_its_weights():
    assert input_normalisation("resnet18", None) == (IMAGENET_MEAN, IMAGENET_STD)  # random: as always
    assert input_normalisation("tu-tf_efficientnet_lite0", "w/local.pth") == (IMAGENET_MEAN, IMAGENET_STD)
    assert input_normalisation("tu-tf_efficientnet_lite2", "imagenet") == ((0.5,) * 3, (0.5,) * 3)
    assert input_normalisation("tu-resnet18", "imagenet") == (IMAGENET_MEAN, IMAGENET_STD)  # timm's config
    explicit = ModelConfig(encoder="tu-tf_efficientnet_lite0", encoder_weights="imagenet",
                           input_mean=(0.1, 0.2, 0.3), input_std=(1.0, 1.0, 1.0))
    assert with_input_normalisation(explicit) is explicit  # set in the config: kept


def test_config_fields_through_toml_and_set(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nencoder = "tu-tf_efficientnet_lite0"\nencoder_weights = "imagenet"\n')
    config = load_config(path, ["model.input_mean=[0.5, 0.5, 0.5]", "model.input_std=[0.5, 0.5, 0.5]",
                                "proposals.encoder_weights=imagenet"])
    assert config.model.encoder_weights == "imagenet" and config.model.input_std == (0.5, 0.5, 0.5)
    assert config.proposals.encoder_weights == "imagenet" and config.proposals.input_mean == ()
    assert Config.from_dict(config.to_dict()) == config
    with pytest.raises(VcsegError, match="model.input_mean and model.input_std must both be three"):
        load_config(None, ["model.input_mean=[0.5, 0.5, 0.5]"])
    with pytest.raises(VcsegError, match="proposals.input_mean"):
        load_config(None, ["proposals.input_mean=[0.5, 0.5, 0.5]", "proposals.input_std=[0.5, 0.0, 0.5]"])


# ---- applied where frames enter -------------------------------------------------------------------

def test_memory_network_normalises_with_its_config():
    torch.manual_seed(0)
    config = tiny_config(input_mean=(0.2, 0.3, 0.4), input_std=(0.5, 0.6, 0.7))
    model = MemoryNetwork(config).eval()
    frames = torch.rand(2, 3, 32, 48)
    mean, std = torch.tensor(config.input_mean).view(1, 3, 1, 1), torch.tensor(config.input_std).view(1, 3, 1, 1)
    with torch.no_grad():
        key, features = model.encode_key(frames)
        expected = model.encoder((frames - mean) / std)
        assert torch.equal(features.f16, expected[4]) and torch.equal(key, model.key_projection(expected[4]))
    assert MemoryNetwork(tiny_config()).config.input_mean == IMAGENET_MEAN  # resolved when built


def test_proposal_network_normalises_with_its_config():
    torch.manual_seed(0)
    config = ProposalConfig(encoder="resnet18", decoder_channels=32, head_channels=16,
                            input_mean=(0.5, 0.5, 0.5), input_std=(0.25, 0.25, 0.25))
    model = ProposalNetwork(config).eval()
    frames = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        features = model.encoder((frames - 0.5) / 0.25)
        assert torch.allclose(model(frames)["foreground_logits"],
                              model.foreground_head(model.decoder(features)))
    assert padding_colour(model) == (128, 128, 128)  # the colour that normalises to 0 pads its frames


def test_padding_colour_is_imagenets_for_old_and_unknown_models():
    old = ProposalNetwork(ProposalConfig(encoder="resnet18", decoder_channels=32, head_channels=16))
    assert padding_colour(old) == IMAGENET_MEAN_RGB
    assert padding_colour(torch.nn.Linear(1, 1)) == IMAGENET_MEAN_RGB


# ---- checkpoints without the fields ---------------------------------------------------------------

def _legacy_checkpoint(path: Path, config: Config, models: dict[str, dict]) -> Path:
    """A checkpoint as written before input_mean / input_std existed: the fields absent from its config."""
    record = config.to_dict()
    for section in ("model", "proposals"):
        del record[section]["input_mean"], record[section]["input_std"]
    torch.save({"format": "vcseg-checkpoint", "version": 1, "config": record, "models": models}, path)
    return path


def test_a_checkpoint_without_the_fields_keeps_imagenet_statistics(tmp_path):
    torch.manual_seed(0)
    config = Config(model=tiny_config(), proposals=ProposalConfig(encoder="resnet18", decoder_channels=32,
                                                                  head_channels=16))
    memory = MemoryNetwork(config.model).eval()
    proposals = ProposalNetwork(config.proposals).eval()
    path = _legacy_checkpoint(tmp_path / "old.pt", config,
                              {"memory": memory.state_dict(), "proposals": proposals.state_dict()})
    loaded, _ = load_memory_network(path)
    loaded_proposals, _ = load_proposal_network(path)
    for model in (loaded, loaded_proposals):
        assert model.config.input_mean == IMAGENET_MEAN and model.config.input_std == IMAGENET_STD
        assert torch.equal(model.std.flatten(), torch.tensor(IMAGENET_STD))
    frames, masks = _fixed_input()
    with torch.no_grad():
        assert torch.equal(loaded(frames, masks), memory(frames, masks))
        assert torch.equal(loaded_proposals(frames[:, 0])["offsets"], proposals(frames[:, 0])["offsets"])


def test_an_imagenet_checkpoint_loads_offline_with_its_own_statistics(tmp_path, monkeypatch):
    """The checkpoint's weights replace the encoder's: nothing is loaded or downloaded to build it."""
    from vcseg.model import pretrained

    config = Config(model=tiny_config(encoder="resnet18", encoder_weights="imagenet",
                                      input_mean=(0.5, 0.5, 0.5), input_std=(0.5, 0.5, 0.5)))
    memory = MemoryNetwork(tiny_config(input_mean=(0.5, 0.5, 0.5), input_std=(0.5, 0.5, 0.5)))
    path = tmp_path / "new.pt"
    torch.save({"format": "vcseg-checkpoint", "version": 1, "config": config.to_dict(),
                "models": {"memory": memory.state_dict()}}, path)

    def no_download(*args, **kwargs):
        raise AssertionError("a checkpoint must load without downloading encoder weights")

    monkeypatch.setattr(pretrained, "downloaded_encoder", no_download)
    loaded, loaded_config = load_memory_network(path)
    assert loaded.config.input_mean == (0.5, 0.5, 0.5) and loaded_config.model.encoder_weights == "imagenet"


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file() or hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()
                    != OLD_DEFAULT_SHA256, reason="weights/default.pt was replaced: the numbers are the old file's")
def test_the_old_default_weights_compute_what_they_did():
    frames, masks = _fixed_input()
    model, config = load_memory_network(DEFAULT_WEIGHTS)
    proposals, _ = load_proposal_network(DEFAULT_WEIGHTS)
    assert "input_mean" not in torch.load(DEFAULT_WEIGHTS, weights_only=True)["config"]["model"]
    with torch.no_grad():
        logits = model(frames, masks)
        maps = proposals(frames[:, 0])
    np.testing.assert_allclose(logits[0, 0, 0, ::16, ::16].flatten().numpy(), OLD_MEMORY_LOGITS, atol=2e-4)
    for name, expected in OLD_PROPOSAL_MAPS.items():
        np.testing.assert_allclose(maps[name][0, :, ::4, ::4].flatten()[:8].numpy(), expected, atol=2e-4)
