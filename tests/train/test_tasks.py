"""What a task trains on: `data.root` plus `data.extra_roots`."""

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
