"""Every shipped config loads, and builds its model (random weights, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcseg.config import load_config
from vcseg.model.network import build_model

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


def test_the_four_recipes_ship():
    assert {p.stem for p in CONFIGS} >= {"demo", "cpu-small", "stm-r50", "champion-resnest"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_builds(path):
    config = load_config(path)
    assert config.data.max_objects <= config.model.max_objects
    model = build_model(config.model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable > 1_000_000
