"""`vcseg report`: one self-contained HTML page of a prediction's scores, plots and worst frames.

    write_report("pred", gt_root="data/val", frames_root="data/val", out="report.html",
                 compare_root="pred-baseline")

The page opens from disk in any browser, with nothing beside it (images are embedded as data
URIs): the summary figures exactly as `vcseg score` computes them (the same `score_dataset`), a
table of videos sortable by any column (persons, matched ids, J, F, J&F, invalid videos flagged),
and per video its per-object J and F over time (matplotlib) and its worst frames drawn as
overlays, prediction beside ground truth with the errors in their colours. With a second
prediction of the same videos (`compare_root`), both are shown side by side and the paired J&F
difference is given with its bootstrap interval (`vcseg.metrics.compare`).
"""

from __future__ import annotations

import base64
import functools
import html
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vcseg import __version__
from vcseg.errors import VcsegError
from vcseg.io.atomic import write_bytes_atomic
from vcseg.io.frames import read_frame
from vcseg.io.layouts import find_dataset, find_mask_videos
from vcseg.io.masks import read_mask
from vcseg.io.outputs import check_writable_file
from vcseg.metrics.compare import Difference, paired_difference
from vcseg.metrics.evaluate import score_dataset
from vcseg.metrics.protocols import VOID_ID, ids_present
from vcseg.metrics.report import ScoreReport, VideoScore
from vcseg.viz.draw import ERROR_COLOURS, ERROR_NAMES, PALETTE, draw_ids, error_classes

WORST_FRAMES = 3  # overlays shown per video
OVERLAY_WIDTH = 400  # pixels of one panel in the page (frames are shrunk to it)


@dataclass(frozen=True)
class ReportSummary:
    path: Path
    videos: int
    bytes: int
    difference: Difference | None


def write_report(pred_root: str | os.PathLike[str], *, gt_root: str | os.PathLike[str],
                 frames_root: str | os.PathLike[str], out: str | os.PathLike[str],
                 compare_root: str | os.PathLike[str] | None = None, protocol: str = "tianchi",
                 worst: int = WORST_FRAMES, workers: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ReportSummary:
    """Score `pred_root` (and `compare_root`) against `gt_root` and write the HTML page `out`."""
    out = Path(out)
    check_writable_file(out, "--out")
    if worst < 0:
        raise VcsegError(f"--worst must be >= 0 (got {worst})")
    frames = {video.name: video for video in find_dataset(frames_root).videos}
    gt_videos = find_mask_videos(gt_root)
    report = score_dataset(pred_root, gt_root, protocol=protocol, workers=workers)
    other = score_dataset(compare_root, gt_root, protocol=protocol, workers=workers) if compare_root else None
    difference = paired_difference(report, other) if other is not None else None
    sections = []
    for done, video in enumerate(report.videos, start=1):
        if video.name not in frames:
            raise VcsegError(f"{Path(frames_root) / video.name}: no frames for ground-truth video {video.name}; "
                             "give --frames the folder of the test frames")
        stems = _scored_stems(list(gt_videos[video.name]), protocol)
        other_video = next(v for v in other.videos if v.name == video.name) if other is not None else None
        sections.append(_video_section(video, other_video, stems, Path(pred_root), Path(compare_root or ""),
                                       frames[video.name].frames, gt_videos[video.name], worst))
        if progress is not None:
            progress(done, len(report.videos))
    page = _page(report, other, difference, Path(pred_root), Path(gt_root),
                 Path(compare_root) if compare_root else None, sections)
    data = page.encode()
    write_bytes_atomic(out, data)
    return ReportSummary(path=out, videos=len(report.videos), bytes=len(data), difference=difference)


def _scored_stems(stems: list[str], protocol: str) -> list[str]:
    """The GT frames a protocol scores, in the order of the per-frame arrays."""
    return stems[1:-1] if protocol == "davis-semi" else stems


def video_jf(video: VideoScore) -> float:
    """The video's J&F: its objects' (J-Mean + F-Mean) / 2 averaged (NaN without objects)."""
    return (video.mean("J_mean") + video.mean("F_mean")) / 2


def worst_frames(video: VideoScore, count: int) -> list[int]:
    """Indices of `count` scored frames with the lowest (J + F) / 2 over the video's objects, in
    frame order, at least T / (2 count) frames apart: a bad stretch shows once, not three times."""
    if not video.objects or count == 0:
        return []
    per_frame = np.mean([(obj.j_per_frame + obj.f_per_frame) / 2 for obj in video.objects], axis=0)
    gap = max(1, len(per_frame) // (2 * count))
    chosen: list[int] = []
    for index in np.argsort(per_frame, kind="stable").tolist():
        if all(abs(index - other) >= gap for other in chosen):
            chosen.append(index)
        if len(chosen) == count:
            break
    return sorted(chosen)


# ---- per video ----------------------------------------------------------------------------------

def _video_section(video: VideoScore, other: VideoScore | None, stems: list[str], pred_root: Path,
                   other_root: Path, frames: dict[str, Path], gt_masks: dict[str, Path], worst: int) -> str:
    plot = _plot(video, other)

    @functools.cache
    def binary_video() -> bool:  # reads every GT mask of the video, so only when a frame needs it
        return ids_present([read_mask(path) for path in gt_masks.values()]) == [VOID_ID]

    tiles = []
    for index in worst_frames(video, worst):
        stem = stems[index]
        gt, void = _ground_truth(read_mask(gt_masks[stem]), binary_video)
        frame = read_frame(frames[stem])
        panels = [("prediction", _overlay(frame, _read_pred(pred_root, video.name, stem, gt), void, gt, video))]
        if other is not None:
            panels.append(("compared", _overlay(frame, _read_pred(other_root, video.name, stem, gt), void, gt, other)))
        panels.append(("ground truth", _overlay(frame, gt, void)))
        jf = np.mean([(obj.j_per_frame[index] + obj.f_per_frame[index]) / 2 for obj in video.objects])
        images = "".join(f'<figure><img alt="{html.escape(title)} {html.escape(stem)}" src="{_data_uri(panel)}">'
                         f"<figcaption>{html.escape(title)}</figcaption></figure>" for title, panel in panels)
        tiles.append(f'<div class="frame"><h4>frame {html.escape(stem)}: J&amp;F {jf:.3f}</h4>'
                     f'<div class="panels">{images}</div></div>')
    status = "" if video.valid else f' <span class="bad">invalid: {html.escape(video.note or "")}</span>'
    return (f'<section class="video" id="v-{html.escape(video.name)}"><h3>{html.escape(video.name)}{status}</h3>'
            f'<img class="plot" alt="J and F over time, {html.escape(video.name)}" src="{plot}">'
            f'<div class="frames">{"".join(tiles)}</div></section>')


def _ground_truth(gt: np.ndarray, binary_video: Callable[[], bool]) -> tuple[np.ndarray, np.ndarray | None]:
    """The GT frame as the scorer saw it, and its void pixels (None: none). As in
    `vcseg.metrics.protocols.tianchi_ground_truth`, decided over the whole video: where its masks
    hold only 0 and 255 (`binary_video()`, asked only for a frame holding 255) 255 is person 1,
    elsewhere 255 is void."""
    if not (gt == VOID_ID).any():
        return gt, None
    if binary_video():
        return (gt == VOID_ID).astype(np.uint8), None
    void = gt == VOID_ID
    return np.where(void, 0, gt).astype(np.uint8), void


def _read_pred(root: Path, video: str, stem: str, gt: np.ndarray) -> np.ndarray:
    path = root / video / f"{stem}.png"
    return read_mask(path) if path.is_file() else np.zeros_like(gt)


def _overlay(frame: np.ndarray, ids: np.ndarray, void: np.ndarray | None, gt: np.ndarray | None = None,
             video: VideoScore | None = None) -> np.ndarray:
    """`ids` drawn over `frame`, shrunk to the page; with `gt`, the errors against it under the
    matching `video`'s scores found (void pixels take part in neither)."""
    if void is not None:
        ids = np.where(void, 0, ids).astype(np.uint8)
    errors = None
    if gt is not None and video is not None:
        matched = np.zeros(256, dtype=np.uint8)
        for obj in video.objects:
            if obj.pred_id is not None and video.valid:
                matched[obj.gt_id] = obj.pred_id
        errors = error_classes(ids, gt, matched)
    panel = np.empty_like(frame)
    draw_ids(panel, frame, ids, errors=errors)
    height, width = panel.shape[:2]
    if width > OVERLAY_WIDTH:
        size = (OVERLAY_WIDTH, max(1, round(height * OVERLAY_WIDTH / width)))
        panel = np.asarray(Image.fromarray(panel).resize(size, Image.BILINEAR))
    return panel


def _plot(video: VideoScore, other: VideoScore | None) -> str:
    """Per-object J (solid) and F (dashed) over the scored frames, in the GT id's palette colour."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 2.4), dpi=80)
    axes = figure.add_subplot()
    for obj in video.objects:
        colour = PALETTE[obj.gt_id] / 255.0
        label = f"person {obj.gt_id}" + (f" (pred {obj.pred_id})" if obj.pred_id is not None else " (unmatched)")
        axes.plot(obj.j_per_frame, color=colour, linewidth=1.5, label=f"J {label}")
        axes.plot(obj.f_per_frame, color=colour, linewidth=1.0, linestyle="--", label=f"F {label}")
    if other is not None:
        for obj in other.objects:
            axes.plot((obj.j_per_frame + obj.f_per_frame) / 2, color=PALETTE[obj.gt_id] / 255.0, linewidth=0.8,
                      linestyle=":", label=f"(J+F)/2 compared, person {obj.gt_id}")
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("scored frame")
    axes.set_ylabel("J / F")
    axes.grid(alpha=0.3)
    if video.objects:
        axes.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _data_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


# ---- the page -----------------------------------------------------------------------------------

def _fmt(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.4f}"


def _cell(value: float | int | str, shown: str | None = None) -> str:
    """A table cell whose sort key is the exact value (NaN sorts first)."""
    key = value if not isinstance(value, float) or not np.isnan(value) else -1.0
    return f'<td data-value="{html.escape(str(key))}">{html.escape(shown if shown is not None else str(value))}</td>'


def _table(report: ScoreReport, other: ScoreReport | None) -> str:
    headers = ["video", "persons", "matched ids", "J", "F", "J&amp;F", "valid"]
    if other is not None:
        headers += ["J&amp;F compared", "difference"]
    others = {video.name: video for video in other.videos} if other is not None else {}
    rows = []
    for video in report.videos:
        jf = video_jf(video)
        matched = sum(obj.pred_id is not None for obj in video.objects)
        cells = [f'<td data-value="{html.escape(video.name)}"><a href="#v-{html.escape(video.name)}">'
                 f"{html.escape(video.name)}</a></td>",
                 _cell(len(video.objects)), _cell(matched),
                 _cell(video.mean("J_mean"), _fmt(video.mean("J_mean"))),
                 _cell(video.mean("F_mean"), _fmt(video.mean("F_mean"))), _cell(jf, _fmt(jf)),
                 _cell(int(video.valid), "yes" if video.valid else f"no ({video.note})" if video.note else "no")]
        if other is not None:
            other_jf = video_jf(others[video.name])
            cells += [_cell(other_jf, _fmt(other_jf)), _cell(jf - other_jf, f"{jf - other_jf:+.4f}")]
        rows.append(f'<tr class="{"" if video.valid else "invalid"}">{"".join(cells)}</tr>')
    head = "".join(f'<th onclick="sortBy(this)">{h}</th>' for h in headers)
    return f'<table id="videos"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _summary(report: ScoreReport, title: str) -> str:
    figures = report.summary()
    names = (("JF_mean", "J&amp;F"), ("J_mean", "J-Mean"), ("F_mean", "F-Mean"), ("J_recall", "J-Recall"),
             ("F_recall", "F-Recall"), ("J_decay", "J-Decay"), ("F_decay", "F-Decay"))
    cells = "".join(f'<div class="figure"><span class="value" data-key="{key}">{_fmt(figures[key])}</span>'
                    f'<span class="name">{name}</span></div>' for key, name in names)
    invalid = sum(not video.valid for video in report.videos)
    counts = (f"{len(report.videos)} videos, {len(report.objects)} persons"
              + (f', <span class="bad">{invalid} invalid</span>' if invalid else ""))
    return f'<div class="summary"><h2>{title}</h2><div class="figures">{cells}</div><p>{counts}</p></div>'


def _page(report: ScoreReport, other: ScoreReport | None, difference: Difference | None, pred_root: Path,
          gt_root: Path, compare_root: Path | None, sections: list[str]) -> str:
    legend = "".join(f'<span class="swatch" style="background:rgb{colour}"></span>{ERROR_NAMES[kind]} '
                     for kind, colour in ERROR_COLOURS.items())
    summaries = _summary(report, f"{html.escape(str(pred_root))}")
    if other is not None:
        summaries += _summary(other, f"compared: {html.escape(str(compare_root))}")
    compare = (f'<p class="difference">{html.escape(str(pred_root))} minus {html.escape(str(compare_root))}: '
               f"<b>{html.escape(str(difference))}</b></p>" if difference is not None else "")
    warnings = "".join(f'<li>{html.escape(w)}</li>' for w in report.warnings)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>vcseg report: {html.escape(str(pred_root))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
.summary {{ display: inline-block; vertical-align: top; margin-right: 2em; }}
.figures {{ display: flex; gap: 1em; }}
.figure {{ display: flex; flex-direction: column; align-items: center; padding: .4em .8em; background: #f3f3f3; }}
.figure .value {{ font-size: 1.4em; font-weight: 600; }}
.figure .name {{ font-size: .8em; color: #555; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ cursor: pointer; background: #eee; user-select: none; }}
td:first-child, th:first-child {{ text-align: left; }}
tr.invalid td {{ background: #fde2e2; }}
.bad {{ color: #b00; font-weight: 600; }}
.panels {{ display: flex; gap: .3em; }}
.frame figure {{ display: inline-block; margin: 0 .3em 0 0; }}
.frame img {{ max-width: {OVERLAY_WIDTH}px; }}
figcaption {{ font-size: .8em; color: #555; }}
.swatch {{ display: inline-block; width: .9em; height: .9em; margin: 0 .2em 0 .8em; vertical-align: middle; }}
section.video {{ border-top: 2px solid #ccc; margin-top: 1.5em; }}
</style></head><body>
<h1>vcseg report</h1>
<p>prediction <code>{html.escape(str(pred_root))}</code> against ground truth <code>{html.escape(str(gt_root))}</code>,
protocol <b>{html.escape(report.protocol)}</b> (the figures of <code>vcseg score</code>);
vcseg {__version__}, {time.strftime("%Y-%m-%d %H:%M")}</p>
{summaries}
{compare}
{f"<ul class='warnings'>{warnings}</ul>" if warnings else ""}
<h2>Videos</h2><p>Click a column to sort; a video's name leads to its plots and worst frames.</p>
{_table(report, other)}
<h2>Per video</h2>
<p>J (solid) and F (dashed) of each person over the scored frames; the worst frames, with errors:
{legend}</p>
{"".join(sections)}
<script>
function sortBy(header) {{
  const table = header.closest("table"), body = table.tBodies[0];
  const column = Array.from(header.parentNode.children).indexOf(header);
  const ascending = header.dataset.order !== "asc";
  header.dataset.order = ascending ? "asc" : "desc";
  const key = row => row.children[column].dataset.value;
  const rows = Array.from(body.rows).sort((a, b) => {{
    const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
    const order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
    return ascending ? order : -order;
  }});
  rows.forEach(row => body.appendChild(row));
}}
</script>
</body></html>
"""
