"""What a scoring run found, and how it is shown: the rich table, the JSON and the CSV.

Global figures average over all objects of all videos, as DAVIS does (a video with more persons
weighs more); J&F = (J-Mean + F-Mean) / 2.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from rich.console import Console
from rich.table import Table

from vcseg.io.atomic import write_bytes_atomic, write_json_atomic
from vcseg.metrics.jf import ObjectStatistics, object_statistics

STATISTICS = ("J_mean", "F_mean", "J_recall", "F_recall", "J_decay", "F_decay")


@dataclass
class ObjectScore:
    """One ground-truth object of a video: whom it was matched to and its per-frame J and F."""

    gt_id: int
    pred_id: int | None  # None: no predicted object (unmatched, padded or invalid video)
    j_per_frame: np.ndarray  # (T,) float64
    f_per_frame: np.ndarray  # (T,) float64

    @cached_property
    def j(self) -> ObjectStatistics:
        return object_statistics(self.j_per_frame)

    @cached_property
    def f(self) -> ObjectStatistics:
        return object_statistics(self.f_per_frame)

    def statistics(self) -> dict[str, float]:
        j, f = self.j, self.f
        return {"J_mean": j.mean, "F_mean": f.mean, "J_recall": j.recall, "F_recall": f.recall,
                "J_decay": j.decay, "F_decay": f.decay}


@dataclass
class VideoScore:
    """The objects of one video; `valid` is False where the prediction broke a rule (too many ids)."""

    name: str
    valid: bool
    objects: list[ObjectScore]
    n_frames: int
    note: str | None = None  # why the video is invalid, for the table

    def mean(self, key: str) -> float:
        """Average of one statistic over this video's objects (NaN for a video without objects)."""
        if not self.objects:
            return float("nan")
        return float(np.mean([obj.statistics()[key] for obj in self.objects]))


@dataclass
class ScoreReport:
    """The result of `score_dataset`: per-video scores, the protocol, and warnings to show."""

    protocol: str
    videos: list[VideoScore]
    warnings: list[str] = field(default_factory=list)

    @property
    def objects(self) -> list[ObjectScore]:
        return [obj for video in self.videos for obj in video.objects]

    def summary(self) -> dict[str, float]:
        """The global figures: each statistic averaged over all objects of all videos."""
        per_object = [obj.statistics() for obj in self.objects]
        out = {key: float(np.mean([stats[key] for stats in per_object])) if per_object else float("nan")
               for key in STATISTICS}
        out["JF_mean"] = (out["J_mean"] + out["F_mean"]) / 2
        return out

    def to_json(self, per_frame: bool = False) -> dict:
        """The JSON document: global figures, then per video its validity and its objects."""
        summary = self.summary()
        doc: dict = {"protocol": self.protocol,
                     **{key: summary[key] for key in ("J_mean", "F_mean", "JF_mean", "J_recall", "F_recall",
                                                      "J_decay", "F_decay")},
                     "videos": {}}
        for video in self.videos:
            objects = []
            for obj in video.objects:
                entry = {"gt_id": obj.gt_id, "pred_id": obj.pred_id, **obj.statistics()}
                if per_frame:
                    entry["J_per_frame"] = [float(v) for v in obj.j_per_frame]
                    entry["F_per_frame"] = [float(v) for v in obj.f_per_frame]
                objects.append(entry)
            doc["videos"][video.name] = {"valid": video.valid, "objects": objects}
        return doc


def write_json(report: ScoreReport, path: str | os.PathLike[str], per_frame: bool = False) -> None:
    write_json_atomic(path, report.to_json(per_frame=per_frame))


CSV_COLUMNS = ("video", "valid", "gt_id", "pred_id", *STATISTICS)


def write_csv(report: ScoreReport, path: str | os.PathLike[str]) -> None:
    """One row per ground-truth object; an empty pred_id means no predicted object."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for video in report.videos:
        for obj in video.objects:
            stats = obj.statistics()
            writer.writerow([video.name, int(video.valid), obj.gt_id,
                             "" if obj.pred_id is None else obj.pred_id,
                             *(repr(stats[key]) for key in STATISTICS)])
    write_bytes_atomic(path, buffer.getvalue().encode())


def _fmt(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3f}"


def render_table(report: ScoreReport, console: Console) -> None:
    """Print the per-video table (persons, J, F, J&F, valid) and the global summary."""
    table = Table(title=f"J&F per video ({report.protocol})", show_footer=False)
    for column, justify in (("video", "left"), ("persons", "right"), ("J", "right"), ("F", "right"),
                            ("J&F", "right"), ("valid", "center")):
        table.add_column(column, justify=justify)
    for video in report.videos:
        j, f = video.mean("J_mean"), video.mean("F_mean")
        valid = "yes" if video.valid else f"[red]no[/red]{f' ({video.note})' if video.note else ''}"
        table.add_row(video.name, str(len(video.objects)), _fmt(j), _fmt(f), _fmt((j + f) / 2), valid)
    console.print(table)

    summary = report.summary()
    totals = Table(title="Summary (averaged over all objects)")
    for column in ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"):
        totals.add_column(column, justify="right")
    totals.add_row(*(_fmt(summary[key]) for key in ("JF_mean", "J_mean", "J_recall", "J_decay",
                                                     "F_mean", "F_recall", "F_decay")))
    console.print(totals)
    invalid = sum(not video.valid for video in report.videos)
    console.print(f"{len(report.videos)} videos, {len(report.objects)} objects"
                  + (f", {invalid} invalid" if invalid else ""))
