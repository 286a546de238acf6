"""`visualize` / `render_video` on tiny videos: the MP4 decodes back, colours, id switches, the sheet,
what it refuses and what it never touches."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_video, person_masks
from tests.viz.conftest import GREY, blocks, decode, inside, write_grey_video, write_predictions
from vcseg.errors import VcsegError
from vcseg.metrics.protocols import FrameCounts
from vcseg.viz import match_ids, plan_videos, render_video, visualize
from vcseg.viz.draw import ERROR_COLOURS, LEGEND_HEIGHT, MISSED, PALETTE, SWITCH, bounding_box
from vcseg.viz.render import _frame_counts, _read_frame_shrunk, png_bytes, reduce_rgb, sheet_layout, worker_count

TOLERANCE = 14  # H.264 at crf 23 on flat colours, 4:2:0 chroma


def close(pixel: np.ndarray, colour) -> bool:
    return bool(np.abs(pixel.astype(int) - np.asarray(colour, int)).max() <= TOLERANCE)


def test_the_mp4_decodes_to_every_frame_at_an_even_size(tmp_path):
    masks = person_masks(5, height=25, width=33)
    make_video(tmp_path / "data", "walk", masks)
    write_predictions(tmp_path / "preds", "walk", masks)
    summary = visualize(tmp_path / "preds", tmp_path / "data", tmp_path / "viz", workers=1)
    frames = decode(tmp_path / "viz" / "walk.mp4")
    assert len(frames) == 5
    assert frames[0].shape == (26, 34, 3)  # 25x33 padded to even
    assert summary.videos[0].size == (34, 26) and summary.videos[0].frames == 5
    import av

    with av.open(str(tmp_path / "viz" / "walk.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.average_rate) == 12


def test_decoded_colours_fill_and_outline(tmp_path):
    masks = blocks(3, ids=(1, 3))
    write_grey_video(tmp_path / "data", "still", masks)
    write_predictions(tmp_path / "preds", "still", masks)
    visualize(tmp_path / "preds", tmp_path / "data", tmp_path / "viz", fps=5, workers=1)
    frame = decode(tmp_path / "viz" / "still.mp4")[1]
    for k, object_id in enumerate((1, 3)):
        assert close(frame[inside(k)], (GREY >> 1) + (PALETTE[object_id] >> 1))
    assert close(frame[46, 46], (GREY, GREY, GREY))


def test_missed_pixels_show_the_missed_colour(tmp_path):
    gt = blocks(3, ids=(1,))
    pred = [np.zeros_like(mask) for mask in gt]
    write_grey_video(tmp_path / "data", "empty", gt)
    write_predictions(tmp_path / "preds", "empty", pred)
    summary = visualize(tmp_path / "preds", tmp_path / "data", tmp_path / "viz", gt_root=tmp_path / "data",
                        workers=1)
    video = summary.videos[0]
    assert video.matches == {} and video.error_frames == {"missed": 3, "false": 0, "id switch": 0}
    frame = decode(tmp_path / "viz" / "empty.mp4")[0]
    assert frame.shape == (48 + LEGEND_HEIGHT, 192, 3)  # prediction | ground truth, legend under
    row, col = inside(0)
    assert close(frame[row, col], ERROR_COLOURS[MISSED])
    assert close(frame[row, 96 + col], (GREY >> 1) + (PALETTE[1] >> 1))  # the GT panel: person 1 filled


def test_an_id_switch_halfway_shows_the_switch_colour_on_the_switched_frames(tmp_path):
    gt = blocks(8, ids=(1, 2))
    swapped = np.array([0, 2, 1] + [0] * 253, np.uint8)
    pred = [mask if t < 5 else swapped[mask] for t, mask in enumerate(gt)]  # ids swap from frame 5 on
    write_grey_video(tmp_path / "data", "swap", gt)
    write_predictions(tmp_path / "preds", "swap", pred)
    summary = visualize(tmp_path / "preds", tmp_path / "data", tmp_path / "viz", gt_root=tmp_path / "data",
                        workers=1)
    video = summary.videos[0]
    assert video.matches == {1: 1, 2: 2}  # mean IoU 5/8 beats 3/8
    assert video.error_frames == {"missed": 0, "false": 0, "id switch": 3}
    frames = decode(tmp_path / "viz" / "swap.mp4")
    for t, frame in enumerate(frames):
        for k in (0, 1):
            assert close(frame[inside(k)], ERROR_COLOURS[SWITCH]) == (t >= 5), (t, k)


@pytest.mark.parametrize("threads", [1, 3])
def test_one_thread_or_several_draw_the_same_video(tmp_path, threads):
    gt = blocks(6, ids=(1, 2))
    swapped = np.array([0, 2, 1] + [0] * 253, np.uint8)
    pred = [mask if t < 4 else swapped[mask] for t, mask in enumerate(gt)]
    write_grey_video(tmp_path / "data", "swap", gt)
    write_predictions(tmp_path / "preds", "swap", pred)
    (job,), _ = plan_videos(tmp_path / "preds", tmp_path / "data", tmp_path / "data", None)
    video = render_video(job, tmp_path / "viz", threads=threads)
    assert video.error_frames == {"missed": 0, "false": 0, "id switch": 2}
    frames = decode(tmp_path / "viz" / "swap.mp4")
    assert len(frames) == 6
    for t, frame in enumerate(frames):
        row, col = inside(1)
        assert close(frame[row, col], ERROR_COLOURS[SWITCH] if t >= 4 else (GREY >> 1) + (PALETTE[2] >> 1)), t
        assert close(frame[row, 96 + col], (GREY >> 1) + (PALETTE[2] >> 1))  # the GT panel


def pair_counts(pred: np.ndarray, gt: np.ndarray) -> dict[tuple[int, int], int]:
    pairs, counts = np.unique(np.stack([pred.ravel(), gt.ravel()]), axis=1, return_counts=True)
    return {(int(p), int(g)): int(n) for (p, g), n in zip(pairs.T, counts)}


@pytest.mark.parametrize("seed", range(8))
def test_frame_counts_in_the_persons_box_are_the_whole_frame_counts(seed):
    rng = np.random.default_rng(seed)
    pred, gt = np.zeros((2, 30, 41), np.uint8)
    if seed:  # seed 0: no person at all
        pred[rng.integers(0, 20):rng.integers(20, 31), rng.integers(0, 20):rng.integers(20, 42)] = rng.integers(1, 4)
        gt[rng.integers(0, 20):rng.integers(20, 31), rng.integers(0, 20):rng.integers(20, 42)] = rng.choice([1, 255])
        gt[rng.integers(0, 30), :] = 0 if seed % 2 else 2
    expected = pair_counts(pred, gt)
    for counts in (_frame_counts(pred, gt, bounding_box(pred | gt)), FrameCounts.of(pred, gt)):
        assert {(int(c) // 256, int(c) % 256): int(n) for c, n in zip(counts.codes, counts.counts)} == expected


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (37, 64)])
def test_the_sheet_png_decodes_to_its_pixels_and_tag(tmp_path, size):
    rgb = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    (tmp_path / "sheet.png").write_bytes(png_bytes(rgb, {"Software": "vcseg viz"}))
    with Image.open(tmp_path / "sheet.png") as image:
        assert image.mode == "RGB" and image.info["Software"] == "vcseg viz"
        assert np.array_equal(np.asarray(image), rgb)


def test_reduce_rgb_is_the_block_mean_rounded_half_up_as_pil_reduces():
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[:, :2] = [[[0, 1, 255], [1, 2, 255]], [[2, 3, 255], [3, 3, 254]]]  # means 1.5, 2.25, 254.75
    rgb[:, 2:] = [10, 20, 30]
    rgb[1, 3] = [12, 22, 31]  # means 10.5, 20.5, 30.25
    assert reduce_rgb(rgb, 2).tolist() == [[[2, 2, 255], [11, 21, 30]]]
    assert reduce_rgb(rgb[:, :3], 2).tolist() == [[[2, 2, 255], [10, 20, 30]]]  # odd width: a 2x1 block at the edge
    assert reduce_rgb(rgb, 1).tolist() == rgb.tolist() and not np.shares_memory(reduce_rgb(rgb, 1), rgb)
    rng = np.random.default_rng(0)
    for height, width, factor in [(240, 854, 2), (7, 10, 2), (10, 7, 2), (9, 12, 3), (16, 16, 4)]:
        canvas = rng.integers(0, 256, (height + 1, width + 2, 3), dtype=np.uint8)
        panels = canvas[:height, :width]  # a view, as the sheet takes it from the canvas
        assert np.array_equal(reduce_rgb(panels, factor), np.asarray(Image.fromarray(panels).reduce(factor)))


def write_mp4(path, comment: str | None, faststart: bool) -> None:
    """Two black frames with PyAV, the comment (if any) as `Mp4Writer` sets it."""
    import av

    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        if comment is not None:
            container.metadata["comment"] = comment
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for _ in range(2):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode(None))


def test_only_mp4s_tagged_by_viz_are_its_own(tmp_path):
    from vcseg.viz.mp4 import VIZ_TAG, written_by_viz

    for faststart in (True, False):  # the tag found before the frames, or after them
        write_mp4(tmp_path / "ours.mp4", VIZ_TAG, faststart)
        assert written_by_viz(tmp_path / "ours.mp4")
        data = (tmp_path / "ours.mp4").read_bytes()
        for cut in (1, 8, 40):  # the movie box cut short (at the start, or at the end without faststart)
            (tmp_path / "cut.mp4").write_bytes(data[:cut + 36] if faststart else data[:-cut])
            assert not written_by_viz(tmp_path / "cut.mp4"), (faststart, cut)
        write_mp4(tmp_path / "theirs.mp4", "a film", faststart)
        write_mp4(tmp_path / "untagged.mp4", None, faststart)
        assert not written_by_viz(tmp_path / "theirs.mp4") and not written_by_viz(tmp_path / "untagged.mp4")
    for junk in (b"", b"my own film", bytes(100), b"\x00\x00\x00\x01moov"):
        (tmp_path / "junk.mp4").write_bytes(junk)
        assert not written_by_viz(tmp_path / "junk.mp4")
    assert not written_by_viz(tmp_path / "missing.mp4")


def test_worker_count():
    assert worker_count(3, 10) == 3 and worker_count(8, 2) == 2 and worker_count(None, 1) == 1


def test_matching_follows_the_scorer_for_binary_ground_truth():
    gt = [np.where(mask > 0, 255, 0).astype(np.uint8) for mask in blocks(2, ids=(1,))]
    pred = [mask * 4 for mask in blocks(2, ids=(1,))]
    assert match_ids(pred, gt) == {1: 4}  # 0/255 masks: 255 is person 1


@pytest.mark.parametrize("void_frames", [(0, 1, 2), (1,)])
def test_matching_follows_the_scorer_for_void_ground_truth(void_frames):
    from vcseg.metrics.protocols import score_video

    gts = blocks(3, ids=(1, 2))  # person 2: rows 4:44, columns 52:92
    preds = blocks(3, ids=(5, 10))
    for t in void_frames:  # void over person 2's lower rows; id 7 on it and on most of the rest of 2
        gts[t][20:44, 52:92] = 255
        preds[t][4:44, 52:77] = 7
        preds[t][20:44, 77:92] = 7
    score = score_video("v", preds, gts, protocol="tianchi")
    expected = {obj.gt_id: obj.pred_id for obj in score.objects if obj.pred_id is not None}
    # void cut out, 7 covers 400 of person 2's 640 pixels and 10 the other 240; counted, 7 would lose
    assert match_ids(preds, gts) == expected == {1: 5, 2: 7 if len(void_frames) == 3 else 10}


def test_frames_without_ground_truth_are_drawn_without_errors(tmp_path):
    masks = blocks(4, ids=(1,))
    write_grey_video(tmp_path / "data", "sparse", masks)
    (tmp_path / "data" / "Annotations" / "sparse" / "00001.png").unlink()
    write_predictions(tmp_path / "preds", "sparse", [np.zeros_like(m) for m in masks])
    summary = visualize(tmp_path / "preds", tmp_path / "data", tmp_path / "viz", gt_root=tmp_path / "data",
                        workers=1)
    assert summary.videos[0].error_frames["missed"] == 3
    assert len(decode(tmp_path / "viz" / "sparse.mp4")) == 4


def test_the_contact_sheet_has_the_expected_size(tmp_path):
    masks = person_masks(12, height=24, width=32)
    make_video(tmp_path / "data", "walk", masks)
    write_predictions(tmp_path / "preds", "walk", masks)
    visualize(tmp_path / "preds", tmp_path / "data", tmp_path / "viz", workers=1)
    tile_h, tile_w, columns, rows = sheet_layout(24, 32, 8, with_gt=False)
    assert (tile_h, tile_w, columns, rows) == (24, 32, 4, 2)
    with Image.open(tmp_path / "viz" / "walk.png") as sheet:
        assert sheet.size == (4 * 32, 2 * 24)
    visualize(tmp_path / "preds", tmp_path / "data", tmp_path / "viz", gt_root=tmp_path / "data", workers=1)
    with Image.open(tmp_path / "viz" / "walk.png") as sheet:  # an earlier run's files are replaced
        assert sheet.size == (2 * 64, 4 * 24 + LEGEND_HEIGHT)


def test_shrink_draws_large_frames_smaller(tmp_path):
    masks = person_masks(2, height=48, width=66)
    make_video(tmp_path / "data", "big", masks)
    write_predictions(tmp_path / "preds", "big", masks)
    summary = visualize(tmp_path / "preds", tmp_path / "data", tmp_path / "viz", shrink=2, workers=1)
    assert summary.videos[0].size == (34, 24) and summary.videos[0].shrink == 2
    assert decode(tmp_path / "viz" / "big.mp4")[0].shape == (24, 34, 3)
    assert sheet_layout(240, 427, 8, with_gt=True) == (120, 427, 2, 4)  # DAVIS 480p at shrink 2: halved again


def pil_draft(path, shrink: int, size: tuple[int, int]) -> np.ndarray:
    """A frame as PIL decodes it at 1/shrink, `size` (H, W): libjpeg's scaling, bilinear where it has none."""
    with Image.open(path) as image:
        image.draft("RGB", (image.width // shrink, image.height // shrink))
        image = image.convert("RGB")
        if image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(image)


@pytest.mark.parametrize("kind", ["RGB.jpg", "L.jpg", "RGB.png"])
def test_shrunk_frames_are_the_pixels_pil_decodes(tmp_path, kind):
    rng = np.random.default_rng(0)
    mode, suffix = kind.split(".")
    coarse = Image.fromarray(rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)).convert(mode)
    for height, width in ((48, 66), (45, 61)):
        path = tmp_path / f"{height}.{suffix}"
        coarse.resize((width, height), Image.Resampling.BICUBIC).save(path)  # a smooth picture, like a photo
        for shrink in (2, 4, 8):
            size = (-(-height // shrink), -(-width // shrink))
            frame = _read_frame_shrunk(path, shrink, (height, width), size)
            assert frame.dtype == np.uint8 and np.array_equal(frame, pil_draft(path, shrink, size)), (height, shrink)


def test_a_truncated_frame_is_refused(small):
    frame = small / "data" / "JPEGImages" / "walk" / "00001.jpg"
    frame.write_bytes(frame.read_bytes()[:-40])
    message = refusal(small, shrink=2)
    assert str(frame) in message and "cannot decode" in message


def test_videos_in_parallel_processes(tmp_path):
    for name in ("a", "b"):
        make_video(tmp_path / "data", name, person_masks(3))
        write_predictions(tmp_path / "preds", name, person_masks(3))
    progress = []
    summary = visualize(tmp_path / "preds", tmp_path / "data", tmp_path / "viz", gt_root=tmp_path / "data",
                        workers=2, progress=lambda done, total: progress.append((done, total)))
    assert [video.name for video in summary.videos] == ["a", "b"]
    assert progress[-1] == (6, 6)
    assert sorted(p.name for p in (tmp_path / "viz").iterdir()) == ["a.mp4", "a.png", "b.mp4", "b.png"]


# ---- refusals -----------------------------------------------------------------------------------

@pytest.fixture
def small(tmp_path):
    masks = person_masks(2)
    make_video(tmp_path / "data", "walk", masks)
    write_predictions(tmp_path / "preds", "walk", masks)
    return tmp_path


def refusal(small, **options) -> str:
    with pytest.raises(VcsegError) as refused:
        visualize(small / "preds", small / "data", small / "viz", workers=1, **options)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_a_video_without_predictions_is_refused(small):
    assert str(small / "preds" / "run") in refusal(small, videos=["run"])


def test_a_missing_prediction_file_is_refused(small):
    (small / "preds" / "walk" / "00001.png").unlink()
    message = refusal(small)
    assert str(small / "preds" / "walk" / "00001.png") in message and "predict every frame" in message


def test_a_mask_of_another_size_than_its_frame_is_refused(small):
    from vcseg.io.masks import write_mask

    write_mask(small / "preds" / "walk" / "00001.png", np.zeros((10, 12), np.uint8))
    message = refusal(small)
    assert str(small / "preds" / "walk" / "00001.png") in message and "12x10" in message
    assert not (small / "viz" / "walk.mp4").exists()  # nothing half-written


def test_a_video_without_ground_truth_is_refused(small):
    make_video(small / "gt", "other", person_masks(2))
    assert "drop --gt" in refusal(small, gt_root=small / "gt")


def test_an_unwritable_out_is_refused(small, unwritable_dir):
    with pytest.raises(VcsegError) as refused:
        visualize(small / "preds", small / "data", unwritable_dir / "viz", workers=1)
    assert str(unwritable_dir / "viz") in str(refused.value) and "--out" in str(refused.value)


def test_files_viz_did_not_write_are_never_replaced(small):
    out = small / "viz"
    out.mkdir()
    (out / "walk.mp4").write_bytes(b"my own film")
    (out / "notes.txt").write_text("mine")
    assert "not written by vcseg viz" in refusal(small)
    assert (out / "walk.mp4").read_bytes() == b"my own film" and not (out / "walk.png").exists()
    (out / "walk.mp4").unlink()
    visualize(small / "preds", small / "data", out, workers=1)
    visualize(small / "preds", small / "data", out, workers=1)  # its own files: replaced
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "walk.mp4", "walk.png"]
    assert (out / "notes.txt").read_text() == "mine"
    Image.new("RGB", (4, 4)).save(out / "walk.png")  # a picture of the same name, not tagged by viz
    assert "walk.png: exists and was not written by vcseg viz" in refusal(small)
