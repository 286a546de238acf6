"""Procedural person videos with instance masks: the bundled demo and test data.

Articulated figures (head, torso, thick limbs, clothing, carried objects labelled with their
person's id) walk, wave and turn over textured scenes seen by a panning, zooming camera, at
different depths (nearer people hide farther ones). Everything is drawn with numpy and PIL and is
deterministic: the same `SynthConfig` gives the same bytes.

    from vcseg.data.synth import SynthConfig, synthesize, render_video
    meta = synthesize("data/synth", SynthConfig(videos=4, frames=30, height=240, width=432))
    video = render_video(SynthConfig(frames=6, height=64, width=96), index=0)  # in memory
"""

from vcseg.data.synth.config import SynthConfig, parse_people, parse_size
from vcseg.data.synth.generate import (GENERATOR_VERSION, META_NAME, RenderedVideo, plan_video, render_video,
                                       synthesize)

__all__ = ["GENERATOR_VERSION", "META_NAME", "RenderedVideo", "SynthConfig", "parse_people", "parse_size",
           "plan_video", "render_video", "synthesize"]
