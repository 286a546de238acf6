from __future__ import annotations

from pathlib import Path

import pytest

from vcseg.config import load_config
from vcseg.data.synth import SynthConfig, synthesize

TINY_MODEL = ["model.encoder=resnet18", "model.value_encoder=resnet18", "model.key_dim=16",
              "model.value_dim=32", "model.decoder_dim=32", "model.max_objects=3"]


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory) -> Path:
    """Two short synthetic videos with 2-3 people at 64x96."""
    root = tmp_path_factory.mktemp("synth") / "data"
    synthesize(root, SynthConfig(videos=2, frames=8, height=64, width=96, people_min=2, people_max=3, seed=3))
    return root


def tiny_config(root: Path, *extra: str):
    return load_config(None, [*TINY_MODEL, f"data.root={root}", "data.short_side=64", "data.crop=[64, 96]",
                              "data.max_objects=2", "data.workers=0", "train.batch_size=2",
                              "train.warmup_steps=1", "train.log_every=1", "train.max_skip=[2]",
                              "train.max_skip_at=[0.0]", *extra])
