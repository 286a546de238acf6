"""In-memory rendering of synthetic videos: figures, objects, occlusion, crowds, entering people."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vcseg.data.synth import SynthConfig, parse_people, parse_size, render_video
from vcseg.data.synth.figure import (CARRIED_KINDS, STANDING, Pose, figure_shapes, rasterize,
                                     sample_appearance)
from vcseg.errors import VcsegError

TINY = dict(frames=6, height=64, width=96)


def _person(seed: int = 0, **changes):
    appearance = sample_appearance(np.random.default_rng(seed))
    return dataclasses.replace(appearance, **changes)


def test_figure_height_in_pixels_matches_its_height_in_metres():
    # Head top: head centre 0.925 h plus the hair ellipse's 1.03 * 0.068 h radius = 0.995 h above the
    # feet; the soles lie 0.004 h below the foot point. At 100 px/m a 1.8 m person spans ~179.8 px.
    app = _person(height_m=1.8, hair_style="short", carried=None)
    raster = rasterize(figure_shapes(app, STANDING, (200.0, 300.0), 100.0), (400, 400))
    rows = np.flatnonzero(raster.codes.any(axis=1)) + raster.y0
    assert abs(rows[0] - (300 - 0.995 * 180)) <= 1.5
    assert abs(rows[-1] - (300 + 0.004 * 180)) <= 1.5


def test_turning_to_profile_makes_the_body_narrower():
    app = _person(build=1.0, carried=None, hair_style="short")
    widths = []
    for facing in (0.0, np.pi / 2):
        pose = Pose(facing=facing, arms=STANDING.arms, legs=STANDING.legs)
        raster = rasterize(figure_shapes(app, pose, (200.0, 300.0), 100.0), (400, 400))
        widths.append(int(raster.codes.any(axis=0).sum()))
    # Facing: shoulders 2 * 0.125 h plus two arms; profile: chest depth 2 * 0.07 h. 1.7 m-ish at 100 px/m.
    assert widths[1] < 0.75 * widths[0]


@pytest.mark.parametrize("kind", CARRIED_KINDS)
def test_carried_object_adds_pixels_beyond_the_body(kind):
    pose = Pose(facing=0.0, arms=STANDING.arms, legs=STANDING.legs)
    with_object = rasterize(figure_shapes(_person(carried=kind), pose, (200.0, 300.0), 100.0), (400, 400))
    without = rasterize(figure_shapes(_person(carried=None), pose, (200.0, 300.0), 100.0), (400, 400))
    full_with = np.zeros((400, 400), bool)
    full_with[with_object.y0:with_object.y0 + with_object.codes.shape[0],
              with_object.x0:with_object.x0 + with_object.codes.shape[1]] = with_object.object_mask()
    body = np.zeros((400, 400), bool)
    body[without.y0:without.y0 + without.codes.shape[0], without.x0:without.x0 + without.codes.shape[1]] = \
        without.codes > 0
    assert (full_with & ~body).sum() > 20  # the object sticks out of the silhouette...


def test_visible_object_pixels_carry_the_person_id():
    config = SynthConfig(videos=1, people_min=3, people_max=3, seed=11, **TINY)
    checked = 0
    for index in range(6):
        video = render_video(config, index, keep_layers=True)
        for frame, mask, layers in zip(video.frames, video.masks, video.layers):
            for position, layer in enumerate(layers):
                if layer.id == 0 or not layer.object.any():
                    continue
                covered = np.zeros_like(layer.object)
                for nearer in layers[position + 1:]:
                    covered |= nearer.silhouette
                visible = layer.object & ~covered
                assert (mask[visible] == layer.id).all()  # ...and where seen, it is the person
                checked += int(visible.sum())
    assert checked > 0


def test_nearer_person_wins_where_people_overlap():
    config = SynthConfig(videos=1, preset="crowd", seed=2, **TINY)
    video = render_video(config, 0, keep_layers=True)
    overlap_pixels = 0
    for mask, layers in zip(video.masks, video.layers):
        # Independent painter: every pixel takes the id of the nearest thing covering it.
        nearest = np.full(mask.shape, np.inf)
        expected = np.zeros(mask.shape, np.uint8)
        coverage = np.zeros(mask.shape, int)
        for layer in layers:
            closer = layer.silhouette & (layer.depth < nearest)
            expected[closer] = layer.id
            nearest[closer] = layer.depth
            coverage += layer.silhouette & (layer.id > 0)
        np.testing.assert_array_equal(mask, expected)
        overlap_pixels += int((coverage >= 2).sum())
    assert overlap_pixels > 0


def test_crowd_preset_puts_more_than_eight_people_in_some_videos():
    config = SynthConfig(videos=3, preset="crowd", people_min=1, people_max=2, seed=4, **TINY)
    crowd = render_video(config, 0)
    plain = render_video(config, 1)
    assert len(np.setdiff1d(np.unique(np.stack(crowd.masks)), [0])) > 8
    assert crowd.meta["crowd"] and not plain.meta["crowd"]
    assert len(plain.meta["people"]) <= 2


def test_entering_person_is_absent_at_frame_zero_and_visible_later():
    config = SynthConfig(videos=1, people_min=3, people_max=4, seed=1, **TINY)
    entering = 0
    for index in range(8):
        video = render_video(config, index)
        for person in video.meta["people"]:
            if person["enters"]:
                entering += 1
                assert not (video.masks[0] == person["id"]).any()
                assert any((mask == person["id"]).any() for mask in video.masks[1:])
    assert entering > 0


def test_render_is_deterministic_and_ignores_global_random_state():
    config = SynthConfig(videos=1, seed=9, **TINY)
    np.random.seed(1)
    first = render_video(config, 0)
    np.random.seed(2)
    second = render_video(config, 0)
    other = render_video(dataclasses.replace(config, seed=10), 0)
    assert all(np.array_equal(a, b) for a, b in zip(first.frames, second.frames))
    assert first.meta == second.meta
    assert not all(np.array_equal(a, b) for a, b in zip(first.frames, other.frames))


def test_odd_frame_size_renders_at_that_size():
    video = render_video(SynthConfig(videos=1, frames=2, height=481, width=853, seed=3), 0)
    assert video.frames[0].shape == (481, 853, 3) and video.frames[0].dtype == np.uint8
    assert video.masks[1].shape == (481, 853)


def test_parsers_and_config_validation():
    assert parse_size("481x853") == (481, 853)
    assert parse_people("9-12") == (9, 12) and parse_people("3") == (3, 3)
    for bad in ("481", "axb", "48x85x2"):
        with pytest.raises(VcsegError, match="HEIGHTxWIDTH"):
            parse_size(bad)
    with pytest.raises(VcsegError, match="MIN <= MAX"):
        SynthConfig(people_min=4, people_max=2)
    with pytest.raises(VcsegError, match="preset"):
        SynthConfig(preset="stadium")
