"""The development split keeps its test person and its test scenes out of its training set."""

from __future__ import annotations

import pytest

from benchmarks import development_split as split


def test_training_composites_never_see_the_left_out_person_or_the_held_out_people():
    config = split.training_composites(("surf",))
    assert {split.LEFT_OUT, "surf", *split.HELD_OUT, *split.RIDERS} <= set(config.exclude)
    assert config.backgrounds == (str(split.OBJECTS),)


@pytest.mark.skipif(not (split.OBJECTS / "JPEGImages").is_dir(), reason="shared DAVIS object sequences not present")
def test_test_composites_hold_only_the_left_out_person_in_rider_scenes():
    config = split.test_composites()
    scenes = split.object_scenes()
    assert set(split.RIDERS) <= set(scenes)
    excluded = set(config.exclude)
    # every other person and every scene a training frame can show is excluded; the test's are not
    assert {p for p in split.TRAIN_PEOPLE if p != split.LEFT_OUT} | set(split.HELD_OUT) <= excluded
    assert {s for s in scenes if s not in split.RIDERS} <= excluded
    assert split.LEFT_OUT not in excluded and not excluded & set(split.RIDERS)
    # and the training set shows none of the test's scenes
    assert set(split.RIDERS) <= set(split.training_composites(()).exclude)
