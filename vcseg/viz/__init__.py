"""Seeing the results: overlay videos and contact sheets of predicted masks, beside the ground truth.

- `draw`: id maps over frames as pure array functions (fill, outlines, labels, error classes);
- `mp4`: the H.264 writer (PyAV);
- `render`: `visualize` (a folder of predictions) and `render_video` (one video).

    from vcseg.viz import visualize
    summary = visualize("preds", "data/val", "viz", gt_root="data/val")   # viz/<video>.mp4, .png
"""

from vcseg.viz.render import VideoInputs, VideoViz, VizSummary, match_ids, plan_videos, render_video, visualize

__all__ = ["VideoInputs", "VideoViz", "VizSummary", "match_ids", "plan_videos", "render_video", "visualize"]
