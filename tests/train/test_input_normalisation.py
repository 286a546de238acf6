"""Training records the trained network's input normalisation, takes an init checkpoint's, and
builds from a checkpoint without loading (downloading) encoder weights."""

from __future__ import annotations

import json

import pytest

from tests.train.conftest import tiny_config
from vcseg.model import pretrained
from vcseg.model.checkpoint import load_checkpoint
from vcseg.model.pretrained import IMAGENET_MEAN, IMAGENET_STD
from vcseg.train.loop import train, with_input_normalisation

HALF = [0.5, 0.5, 0.5]


def test_a_run_records_the_resolved_normalisation(tiny_videos, tmp_path):
    config = tiny_config(tiny_videos, "train.steps=1")
    assert config.model.input_mean == ()  # left to the encoder's weights
    summary = train(config, tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    saved = load_checkpoint(summary.last_checkpoint)["config"]["model"]
    assert recorded["input_mean"] == saved["input_mean"] == list(IMAGENET_MEAN)
    assert recorded["input_std"] == saved["input_std"] == list(IMAGENET_STD)


def test_an_init_checkpoints_normalisation_is_taken_unless_the_run_sets_one(tiny_videos):
    config = tiny_config(tiny_videos)
    started = tiny_config(tiny_videos, f"model.input_mean={HALF}", f"model.input_std={HALF}")
    init = {"config": started.to_dict()}
    assert with_input_normalisation(config, "model", init).model.input_mean == (0.5, 0.5, 0.5)
    assert with_input_normalisation(config, "model").model.input_mean == IMAGENET_MEAN
    own = tiny_config(tiny_videos, "model.input_mean=[0.4, 0.4, 0.4]", "model.input_std=[0.3, 0.3, 0.3]")
    assert with_input_normalisation(own, "model", init).model.input_std == (0.3, 0.3, 0.3)
    legacy = started.to_dict()
    del legacy["model"]["input_mean"], legacy["model"]["input_std"]  # a checkpoint from before the fields
    assert with_input_normalisation(config, "model", {"config": legacy}).model.input_mean == IMAGENET_MEAN


def test_starting_from_a_checkpoint_downloads_no_encoder_weights(tiny_videos, tmp_path, monkeypatch):
    first = train(tiny_config(tiny_videos, "train.steps=1"), tmp_path / "first")

    def no_download(*args, **kwargs):
        raise AssertionError("the init checkpoint's weights replace the encoder's: nothing to download")

    monkeypatch.setattr(pretrained, "downloaded_encoder", no_download)
    config = tiny_config(tiny_videos, "train.steps=1", "model.encoder_weights=imagenet",
                         f"model.input_mean={list(IMAGENET_MEAN)}", f"model.input_std={list(IMAGENET_STD)}",
                         f"train.init={first.last_checkpoint}")
    summary = train(config, tmp_path / "second")
    assert summary.steps_done == 1
    assert load_checkpoint(summary.last_checkpoint)["config"]["model"]["encoder_weights"] == "imagenet"
    with pytest.raises(AssertionError, match="nothing to download"):  # without init it would download
        train(tiny_config(tiny_videos, "train.steps=1", "model.encoder_weights=imagenet",
                          f"model.input_mean={list(IMAGENET_MEAN)}", f"model.input_std={list(IMAGENET_STD)}"),
              tmp_path / "third")
