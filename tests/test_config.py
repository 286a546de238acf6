"""The typed config: TOML, overrides, errors, round trip."""

from __future__ import annotations

import json

import pytest

from vcseg.config import Config, ModelConfig, load_config
from vcseg.errors import VcsegError


def write(tmp_path, text: str):
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file():
    config = load_config()
    assert config == Config()
    assert config.model.encoder == "resnet50" and config.model.encoder_weights is None
    assert config.model.aspp_rates == (2, 4, 8)


def test_toml_values_land_typed(tmp_path):
    path = write(tmp_path, '[model]\nencoder = "tu-resnest50d"\nkey_dim = 32\naspp_rates = [1, 3]\n'
                           'spatial_constraint = false\nencoder_weights = "w/resnest.pt"\n')
    model = load_config(path).model
    assert model == ModelConfig(encoder="tu-resnest50d", key_dim=32, aspp_rates=(1, 3),
                                spatial_constraint=False, encoder_weights="w/resnest.pt")


def test_overrides_apply_in_order_over_the_file(tmp_path):
    path = write(tmp_path, "[model]\nkey_dim = 32\n")
    config = load_config(path, ["model.key_dim=48", "model.encoder=resnet18", "model.aspp_rates=[6, 12]",
                                "model.channels_last=true", 'model.affinity="dot"', "model.key_dim=40"])
    assert (config.model.key_dim, config.model.encoder, config.model.aspp_rates) == (40, "resnet18", (6, 12))
    assert config.model.channels_last is True and config.model.affinity == "dot"


def test_override_none_clears_an_optional_path():
    config = load_config(None, ["model.encoder_weights=w.pt"])
    assert config.model.encoder_weights == "w.pt"
    assert load_config(None, ["model.encoder_weights=w.pt", "model.encoder_weights=none"]).model.encoder_weights is None


@pytest.mark.parametrize("override, message", [
    ("model.key_dims=3", "unknown key model.key_dims"),
    ("optim.steps=3", "unknown setting 'optim.steps'"),
    ("model.key_dim", "section.key=value"),
    ("model.key_dim=abc", "whole number"),
    ("model.key_dim=2.5", "whole number"),
    ("model.key_dim=true", "whole number"),
    ("model.channels_last=1", "true or false"),
    ("model.aspp_rates=3", "list"),
    ("model.aspp_rates=[1, 0]", "aspp_rates"),
    ("model.affinity=cosine", "affinity 'cosine' is unknown"),
    ("model.key_dim=0", "key_dim must be at least 1"),
    ("model.top_k=-1", "top_k"),
    ("model.encoder=none", "not none"),
    ("model.encoder=[1]", "string"),
])
def test_bad_overrides_are_named(override, message):
    with pytest.raises(VcsegError, match=message) as error:
        load_config(None, [override])
    assert override in str(error.value)


@pytest.mark.parametrize("text, message", [
    ("[modle]\nkey_dim = 3\n", r"unknown section \[modle\]"),
    ("[model]\nkeydim = 3\n", "unknown key model.keydim"),
    ("[model]\nkey_dim = \"64\"\n", "model.key_dim: needs a whole number"),
    ("model = 3\n", "must be a table"),
    ("[model\n", "not valid TOML"),
    ("[model]\nvalue_dim = -5\n", "value_dim must be at least 1"),
])
def test_bad_files_are_named(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(VcsegError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(VcsegError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_to_dict_is_plain_and_round_trips_through_json():
    config = load_config(None, ["model.aspp_rates=[1, 2]", "model.encoder_weights=enc.pt", "model.top_k=20"])
    record = config.to_dict()
    assert record["model"]["aspp_rates"] == [1, 2]
    assert record["model"]["top_k"] == 20
    assert Config.from_dict(json.loads(json.dumps(record))) == config


def test_data_and_train_sections(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[data]\ncrop = [256, 448]\n[train]\nsteps = 20\nmax_skip = [3, 6]\nmax_skip_at = [0.0, 0.5]\n")
    config = load_config(path, ["train.lr=3e-4"])
    assert config.data.crop == (256, 448)
    assert config.train.steps == 20 and config.train.lr == 3e-4
    assert config.train.skip_schedule == [(0.0, 3), (0.5, 6)]
    assert Config.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("override, message", [
    ("data.crop=[100, 100]", "multiples of 16"),
    ("train.stage=finetune", "train.stage 'finetune' is unknown"),
    ("train.max_skip=[1, 2]", "same length"),
    ("train.precision=fp8", "train.precision 'fp8' is unknown"),
    ("train.encoder_lr_scale=1.5", "encoder_lr_scale must be in"),
    ("train.encoder_lr_scale=-0.1", "encoder_lr_scale must be in"),
    ("data.instance_recolour=2", "instance_recolour must be in"),
    ("data.background_recolour=-0.5", "background_recolour must be in"),
])
def test_bad_train_settings(override, message):
    with pytest.raises(VcsegError, match=message):
        load_config(None, [override])
