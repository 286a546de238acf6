"""`vcseg report`: the page's structure, its figures equal to `vcseg score`'s, and how it looks."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import make_video, person_masks
from vcseg.cli import main
from vcseg.errors import VcsegError
from vcseg.io.masks import write_mask
from vcseg.metrics.compare import paired_difference
from vcseg.metrics.evaluate import score_dataset
from vcseg.viz.report import worst_frames, write_report


class _Page(HTMLParser):
    """What a reader of the page sees: table rows (cell texts and sort keys), images, figures."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str | None]]] = []
        self.images: list[str] = []
        self.figures: dict[str, str] = {}
        self._cell: list | None = None
        self._in_body = False
        self._figure_key: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = [attrs.get("data-value"), ""]
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "span" and "data-key" in attrs and attrs["data-key"] not in self.figures:
            self._figure_key = attrs["data-key"]

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append((self._cell[1], self._cell[0]))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data
        if self._figure_key is not None:
            self.figures[self._figure_key] = data
            self._figure_key = None


@pytest.fixture
def scored(tmp_path):
    """Three videos with ground truth, a prediction (one video perfect, one with swapped ids
    halfway, one with 9 ids: invalid) and a second prediction (all empty)."""
    data = tmp_path / "data"
    for name in ("a", "b", "c"):
        make_video(data, name, person_masks(6, height=48, width=64))
    pred, empty = tmp_path / "pred", tmp_path / "empty"
    for t, mask in enumerate(person_masks(6, height=48, width=64)):
        write_mask(pred / "a" / f"{t:05d}.png", mask)
        swapped = mask.copy()
        if t >= 3:
            swapped[mask == 1], swapped[mask == 2] = 2, 1
        write_mask(pred / "b" / f"{t:05d}.png", swapped)
        crowded = mask.copy()
        crowded[40:42, 0:9] = np.arange(3, 12)[None, :]  # 9 more ids: over the 8 allowed
        write_mask(pred / "c" / f"{t:05d}.png", crowded)
        for name in ("a", "b", "c"):
            write_mask(empty / name / f"{t:05d}.png", np.zeros_like(mask))
    return data, pred, empty


def test_the_page_shows_the_scorers_figures(scored, tmp_path):
    data, pred, empty = scored
    out = tmp_path / "report" / "report.html"
    summary = write_report(pred, gt_root=data, frames_root=data, out=out, compare_root=empty, workers=1)
    page = _Page()
    page.feed(out.read_text())
    report = score_dataset(pred, data, workers=1)
    other = score_dataset(empty, data, workers=1)
    expected = report.summary()
    assert page.figures == {key: f"{expected[key]:.4f}" for key in page.figures}
    assert set(page.figures) == {"JF_mean", "J_mean", "F_mean", "J_recall", "F_recall", "J_decay", "F_decay"}
    # one row per video: persons, matched ids, J&F (with its exact value as the sort key), validity
    rows = {row[0][0]: row for row in page.rows}
    assert sorted(rows) == ["a", "b", "c"]
    for video in report.videos:
        row = rows[video.name]
        jf = (video.mean("J_mean") + video.mean("F_mean")) / 2
        assert row[1][0] == "2" and float(row[5][1]) == jf and row[5][0] == f"{jf:.4f}"
    assert rows["a"][5][0] == "1.0000" and rows["a"][2][0] == "2"
    assert rows["c"][6][0].startswith("no (11 ids > 8)") and rows["c"][2][0] == "0"
    # swapped halfway: the matching keeps one assignment, so half the frames are wrong for both persons
    assert 0.4 < float(rows["b"][5][1]) < 0.6
    # the comparison: both sides, and the paired difference with its interval, as vcseg score prints it
    assert html.escape(str(paired_difference(report, other))) in out.read_text()
    assert summary.difference == paired_difference(report, other)
    # plots and overlays are embedded: a plot per video, and for each worst frame prediction,
    # compared and ground truth (3 frames for a, b and c)
    assert all(src.startswith("data:image/") for src in page.images)
    plots = [src for src in page.images if src.startswith("data:image/png")]
    assert len(plots) == 3 and len(page.images) == 3 + 3 * 3 * 3
    assert not re.search(r'src="(?!data:)', out.read_text())  # nothing beside the page


def test_worst_frames_are_the_lowest_in_frame_order(scored):
    data, pred, _ = scored
    video = next(v for v in score_dataset(pred, data, workers=1).videos if v.name == "b")
    per_frame = np.mean([(o.j_per_frame + o.f_per_frame) / 2 for o in video.objects], axis=0)
    assert per_frame[3:].max() < per_frame[:3].min()  # the swapped half is the worst
    assert worst_frames(video, 1) == [3]  # the first of the worst, stably
    # spread at least 6 // (2 * 3) = 1 apart: the three worst; 6 // 4 = 1 for two as well
    assert worst_frames(video, 3) == [3, 4, 5] and worst_frames(video, 2) == [3, 4]
    # a longer video: 12 frames, 2 wanted, at least 3 apart, so not two neighbours of the bad stretch
    longer = replace(video, objects=[replace(o, j_per_frame=np.r_[np.ones(6), np.linspace(0.1, 0.2, 6)],
                                             f_per_frame=np.r_[np.ones(6), np.linspace(0.1, 0.2, 6)])
                                     for o in video.objects], n_frames=12)
    assert worst_frames(longer, 2) == [6, 9]


def test_cli_and_one_line_errors(scored, tmp_path, unwritable_dir):
    data, pred, _ = scored
    result = CliRunner().invoke(main, ["report", str(pred), "--gt", str(data), "--frames", str(data),
                                       "--out", str(tmp_path / "r.html"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert f"report: {tmp_path / 'r.html'} (3 videos" in result.output
    bad = CliRunner().invoke(main, ["report", str(pred), "--gt", str(data), "--frames", str(data),
                                    "--out", str(unwritable_dir / "r.html")])
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1 and "Traceback" not in bad.output
    few = tmp_path / "few"
    make_video(few, "a", person_masks(6, height=48, width=64), layout="frames-only")
    with pytest.raises(VcsegError, match=r"few/b: no frames for ground-truth video b; give --frames"):
        write_report(pred, gt_root=data, frames_root=few, out=tmp_path / "x.html", workers=1)
    assert not (tmp_path / "x.html").exists()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed (Debian: chromium)")
def test_the_page_renders_in_headless_chromium(scored, tmp_path):
    from PIL import Image

    data, pred, empty = scored
    out = tmp_path / "report.html"
    write_report(pred, gt_root=data, frames_root=data, out=out, compare_root=empty, workers=1)
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,1400", f"--screenshot={shot}", out.as_uri()],
                   check=True, capture_output=True, timeout=120)
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (1400, 1200)
    # the page drew more than a blank: text, the table, a plot and the overlays' colours
    assert image.std() > 20 and len(np.unique(image.reshape(-1, 3), axis=0)) > 500


def test_255_in_a_frame_is_read_as_the_scorer_reads_the_whole_video():
    from vcseg.viz.report import _ground_truth

    only_void = np.zeros((4, 4), np.uint8)
    only_void[0, 0] = 255
    # a video with person 1 elsewhere: a frame showing only 255 holds void, not person 1
    gt, void = _ground_truth(only_void, lambda: False)
    assert gt.max() == 0 and void is not None and void[0, 0] and void.sum() == 1
    # a binary 0/255 video: 255 is person 1
    gt, void = _ground_truth(only_void, lambda: True)
    assert gt[0, 0] == 1 and void is None
    # no 255 in the frame: the video is not even asked about
    plain = np.ones((4, 4), np.uint8)
    gt, void = _ground_truth(plain, lambda: pytest.fail("asked for nothing"))
    assert gt is plain and void is None
