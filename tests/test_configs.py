"""Every shipped config loads, and builds its model (random weights, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcseg.config import Config, load_config
from vcseg.model.checkpoint import load_checkpoint
from vcseg.model.network import build_model

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))


def test_the_four_recipes_ship():
    assert {p.stem for p in CONFIGS} >= {"demo", "cpu-small", "stm-r50", "champion-resnest"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_builds(path):
    config = load_config(path)
    assert config.data.max_objects <= config.model.max_objects
    model = build_model(config.model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable > 1_000_000


def test_the_finetune_recipe_builds_the_network_it_starts_from():
    """configs/davis-finetune-memory.toml starts from weights/default.pt: the networks must agree."""
    tuned = load_config(ROOT / "configs" / "davis-finetune-memory.toml")
    assert tuned.train.init == "weights/default.pt" and tuned.train.task == "memory"
    assert Config.from_dict(load_checkpoint(ROOT / tuned.train.init)["config"]).model == tuned.model
