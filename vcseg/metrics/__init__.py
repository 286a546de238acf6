"""Scoring predictions against ground truth: J&F as DAVIS defines it, under three protocols.

- `jf`: the metric as pure functions (J, boundary map, F, per-object statistics);
- `boundaries`: each mask's boundary and dilation once per frame, for fast pair scoring;
- `matching`: Hungarian matching of predicted to ground-truth objects;
- `protocols`: one video under tianchi / davis-unsup / davis-semi, arrays in;
- `evaluate`: `score_dataset`, the files on disk and the worker processes;
- `report`: `ScoreReport`, its rich table, JSON and CSV.
"""

from vcseg.metrics.evaluate import score_dataset
from vcseg.metrics.protocols import MATCHES, PROTOCOLS, score_video
from vcseg.metrics.report import ScoreReport, render_table, write_csv, write_json

__all__ = ["MATCHES", "PROTOCOLS", "ScoreReport", "render_table", "score_dataset", "score_video",
           "write_csv", "write_json"]
