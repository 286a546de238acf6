"""What a task trains on: `data.root` plus `data.extra_roots`, less `data.exclude`."""

from __future__ import annotations

import shutil

import pytest

from tests.train.conftest import tiny_config
from vcseg.errors import VcsegError
from vcseg.train.tasks import ProposalTask, training_files


def _renamed_copy(root, target, prefix):
    for tree in ("JPEGImages", "Annotations"):
        for video in sorted((root / tree).iterdir()):
            shutil.copytree(video, target / tree / f"{prefix}-{video.name}")
    return target


def test_extra_roots_add_their_videos(tiny_videos, tmp_path):
    extra = _renamed_copy(tiny_videos, tmp_path / "extra", "real")
    config = tiny_config(tiny_videos, f'data.extra_roots=["{extra}"]')
    files, videos = training_files(config)
    assert videos is None
    assert [v.name for v in files.videos] == ["synth0000", "synth0001", "real-synth0000", "real-synth0001"]
    assert files.videos[2].frames["00000"] == extra / "JPEGImages" / "real-synth0000" / "00000.jpg"
    alone = ProposalTask(tiny_config(tiny_videos, "train.task=proposals")).build_dataset()
    both = ProposalTask(tiny_config(tiny_videos, "train.task=proposals",
                                    f'data.extra_roots=["{extra}"]')).build_dataset()
    assert len(both) == 2 * len(alone) > 0


def test_extra_roots_refuse_a_repeated_video_name(tiny_videos, tmp_path):
    config = tiny_config(tiny_videos, f'data.extra_roots=["{tiny_videos}"]')
    with pytest.raises(VcsegError, match="video 'synth0000' is also in"):
        training_files(config)


def test_exclude_keeps_held_out_videos_out_of_every_root(tiny_videos, tmp_path):
    extra = _renamed_copy(tiny_videos, tmp_path / "extra", "real")
    config = tiny_config(tiny_videos, f'data.extra_roots=["{extra}"]',
                         'data.exclude=["synth0001", "real-synth0000"]')
    files, videos = training_files(config)
    assert videos is None and [v.name for v in files.videos] == ["synth0000", "real-synth0001"]
    alone = ProposalTask(tiny_config(tiny_videos, "train.task=proposals", 'data.exclude=["synth0001"]'))
    full = ProposalTask(tiny_config(tiny_videos, "train.task=proposals"))
    assert 0 < len(alone.build_dataset()) < len(full.build_dataset())


def test_exclude_refuses_a_name_no_root_holds(tiny_videos):
    """A typo would leak the held-out video it meant into training."""
    config = tiny_config(tiny_videos, 'data.exclude=["synth0001", "rolerblade"]')
    with pytest.raises(VcsegError, match="data.exclude names rolerblade, which no training root holds"):
        training_files(config)


def test_exclude_applies_to_an_index_split(tiny_videos, tmp_path):
    index = tmp_path / "index.json"
    index.write_text('{"split": {"train": ["synth0000", "synth0001"], "val": []}}')
    config = tiny_config(tiny_videos, f"data.index={index}", 'data.exclude=["synth0000"]')
    files, videos = training_files(config)
    assert videos == ["synth0001"]
