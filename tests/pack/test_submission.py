"""write_submission / check_predictions / check_zip on tiny test sets built in tmp_path."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.pack.conftest import VIDEOS, person_mask, write_frames
from vcseg.io.masks import write_mask
from vcseg.pack import SubmissionInvalid, check_predictions, check_zip, summarize_zip, write_submission
from vcseg.pack.zipwrite import ZIP_DATE_TIME

EXPECTED_NAMES = sorted(f"{video}/{stem}.png" for video, (stems, _) in VIDEOS.items() for stem in stems)


def errors(problems):
    return [p for p in problems if p.is_error]


def zip_entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def decode(data: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as image:
        return image.mode, np.asarray(image)


# ---- the good path --------------------------------------------------------------------------------

def test_round_trip_copies_every_png_byte_for_byte(test_set, tmp_path):
    preds, frames = test_set
    out = tmp_path / "submissions" / "run.zip"
    summary = write_submission(preds, frames, out)

    entries = zip_entries(out)
    assert sorted(entries) == EXPECTED_NAMES  # no wrapper, no directory entries, nothing else
    for name, data in entries.items():
        assert data == (preds / name).read_bytes()
    assert summary.videos == 2 and summary.frames == 5
    assert summary.ids_per_video == {"alpha": 2, "beta": 1}  # alpha: ids 1, 2; beta: id 3
    assert summary.max_ids == 2 and summary.max_ids_video == "alpha"
    assert summary.zip_bytes == out.stat().st_size
    assert summary.fixed == 0 and summary.warnings == []
    assert [p.name for p in out.parent.iterdir()] == ["run.zip"]  # no temporary left behind


def test_pack_is_deterministic_whatever_the_file_times(test_set, tmp_path):
    preds, frames = test_set
    first = tmp_path / "a.zip"
    write_submission(preds, frames, first)
    for png in preds.rglob("*.png"):
        os.utime(png, (1_700_000_000, 1_700_000_000))
    second = tmp_path / "b.zip"
    write_submission(preds, frames, second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == EXPECTED_NAMES  # sorted
    assert {i.date_time for i in infos} == {ZIP_DATE_TIME}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_frames_in_davis_layout(tmp_path):
    frames = write_frames(tmp_path / "test" / "JPEGImages")
    preds = tmp_path / "preds"
    from tests.pack.conftest import write_predictions
    write_predictions(preds)
    summary = write_submission(preds, tmp_path / "test", tmp_path / "s.zip")
    assert frames.is_dir() and summary.frames == 5
    assert sorted(zip_entries(tmp_path / "s.zip")) == EXPECTED_NAMES


def test_hidden_files_in_the_folder_are_a_warning_and_not_packed(test_set, tmp_path):
    preds, frames = test_set
    (preds / ".DS_Store").write_bytes(b"junk")
    (preds / "alpha" / ".ipynb_checkpoints").mkdir()
    (preds / "alpha" / ".ipynb_checkpoints" / "x.png").write_bytes(b"junk")
    summary = write_submission(preds, frames, tmp_path / "s.zip")
    assert sorted(zip_entries(tmp_path / "s.zip")) == EXPECTED_NAMES
    assert sorted(str(w.path) for w in summary.warnings) == [
        str(preds / ".DS_Store"), str(preds / "alpha" / ".ipynb_checkpoints")]
    assert all(w.severity == "warning" for w in summary.warnings)


# ---- refusals -----------------------------------------------------------------------------------

def _missing_video(preds):
    shutil.rmtree(preds / "beta")
    return preds / "beta", "missing video"


def _missing_frame(preds):
    (preds / "alpha" / "00001.png").unlink()
    return preds / "alpha" / "00001.png", "missing frame"


def _size_mismatch(preds):
    write_mask(preds / "beta" / "00006.png", person_mask(18, 27, [3]))  # frame is 26 wide
    return preds / "beta" / "00006.png", "size 27x18"


def _rgb(preds):
    Image.new("RGB", (30, 20), (128, 0, 0)).save(preds / "alpha" / "00002.png")
    return preds / "alpha" / "00002.png", "RGB mask"


def _nine_ids(preds):
    # at most 8 per frame, but 9 over the video: the limit is per video
    write_mask(preds / "alpha" / "00000.png", person_mask(20, 30, [1, 2, 3, 4, 5]))
    write_mask(preds / "alpha" / "00001.png", person_mask(20, 30, [6, 7, 8]))
    write_mask(preds / "alpha" / "00002.png", person_mask(20, 30, [9, 1]))
    return preds / "alpha", "9 distinct ids over the video (1, 2, 3, 4, 5, 6, 7, 8, 9), first over 8 at frame 00002"


def _extra_file(preds):
    (preds / "alpha" / "notes.txt").write_text("hi")
    return preds / "alpha" / "notes.txt", "extra file (not a PNG mask)"


def _extra_png(preds):
    write_mask(preds / "beta" / "00007.png", person_mask(18, 26, [3]))
    return preds / "beta" / "00007.png", "video 'beta' has no frame '00007'"


def _extra_video(preds):
    write_mask(preds / "gamma" / "00000.png", person_mask(18, 26, [1]))
    return preds / "gamma", "extra video"


def _binary_255(preds):
    mask = (person_mask(20, 30, [1]) * 255).astype(np.uint8)
    Image.fromarray(mask, mode="L").save(preds / "alpha" / "00000.png")
    return preds / "alpha" / "00000.png", "--fix"


REFUSALS = [_missing_video, _missing_frame, _size_mismatch, _rgb, _nine_ids, _extra_file, _extra_png,
            _extra_video, _binary_255]


@pytest.mark.parametrize("break_it", REFUSALS, ids=lambda f: f.__name__.strip("_"))
def test_each_refusal_names_the_file_and_writes_nothing(test_set, tmp_path, break_it):
    preds, frames = test_set
    path, words = break_it(preds)
    out = tmp_path / "out" / "s.zip"
    with pytest.raises(SubmissionInvalid) as refused:
        write_submission(preds, frames, out)
    found = errors(refused.value.problems)
    assert [(p.path, words in p.message) for p in found] == [(path, True)]
    assert "1 problem in" in str(refused.value) and "not written" in str(refused.value)
    assert not out.parent.exists()  # not even the folder
    assert errors(check_predictions(preds, frames)) == found  # the same pass without writing


def test_upper_case_suffix_is_named_and_its_frame_missing(test_set):
    preds, frames = test_set
    (preds / "beta" / "00005.png").rename(preds / "beta" / "00005.PNG")
    problems = errors(check_predictions(preds, frames))
    assert [(p.path, p.message.split(";")[0]) for p in problems] == [
        (preds / "beta" / "00005.PNG", "extra file (the suffix must be '.png', not '.PNG')"),
        (preds / "beta" / "00005.png", "missing frame: no PNG for frame " + str(frames / "beta" / "00005.jpg")),
    ]


def test_every_problem_is_reported_at_once(test_set, tmp_path):
    preds, frames = test_set
    broken = [_missing_video, _missing_frame, _rgb, _extra_file, _extra_video, _binary_255]
    expected = {fn(preds)[0] for fn in broken}
    problems = errors(check_predictions(preds, frames))
    assert {p.path for p in problems} == expected
    assert len(problems) == len(broken)


def test_existing_zip_is_untouched_when_validation_fails(test_set, tmp_path):
    preds, frames = test_set
    out = tmp_path / "s.zip"
    write_submission(preds, frames, out)
    before = out.read_bytes()
    _rgb(preds)
    with pytest.raises(SubmissionInvalid):
        write_submission(preds, frames, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds", "s.zip", "test"]


def test_binary_mask_whose_255_would_be_id_255_message(test_set):
    preds, frames = test_set
    _binary_255(preds)
    [problem] = errors(check_predictions(preds, frames))
    assert "255 would be person id 255" in problem.message


# ---- --fix ----------------------------------------------------------------------------------------

def test_gray_mask_is_accepted_as_is_without_fix(test_set, tmp_path):
    preds, frames = test_set
    gray = person_mask(18, 26, [3, 4])
    Image.fromarray(gray, mode="L").save(preds / "beta" / "00005.png")
    summary = write_submission(preds, frames, tmp_path / "s.zip")
    data = zip_entries(tmp_path / "s.zip")["beta/00005.png"]
    assert data == (preds / "beta" / "00005.png").read_bytes()
    assert decode(data)[0] == "L"
    assert summary.ids_per_video["beta"] == 2  # ids 3 and 4


def test_fix_converts_gray_and_binary_to_indexed_and_keeps_ids(test_set, tmp_path):
    preds, frames = test_set
    gray = person_mask(18, 26, [3, 4])
    Image.fromarray(gray, mode="L").save(preds / "beta" / "00005.png")
    binary = person_mask(20, 30, [7]) // 7 * 255  # 0 / 255
    Image.fromarray(binary.astype(np.uint8), mode="L").save(preds / "alpha" / "00001.png")
    summary = write_submission(preds, frames, tmp_path / "s.zip", fix=True)
    entries = zip_entries(tmp_path / "s.zip")

    mode, ids = decode(entries["beta/00005.png"])
    assert mode == "P" and np.array_equal(ids, gray)
    mode, ids = decode(entries["alpha/00001.png"])
    assert mode == "P" and np.array_equal(ids, (binary == 255).astype(np.uint8))
    assert entries["alpha/00000.png"] == (preds / "alpha" / "00000.png").read_bytes()  # P: copied
    assert summary.fixed == 2
    assert check_zip(tmp_path / "s.zip", frames) == []  # what --fix wrote passes --check
    assert summary.ids_per_video == {"alpha": 2, "beta": 2}  # alpha: 1, 2 (binary became 1); beta: 3, 4


def test_fix_does_not_rescue_rgb(test_set):
    preds, frames = test_set
    path, _ = _rgb(preds)
    [problem] = errors(check_predictions(preds, frames, fix=True))
    assert problem.path == path and "--fix cannot" in problem.message


# ---- --check ----------------------------------------------------------------------------------------

def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_check_zip_accepts_a_packed_zip_and_one_with_directory_entries(test_set, tmp_path):
    preds, frames = test_set
    write_submission(preds, frames, tmp_path / "s.zip")
    assert check_zip(tmp_path / "s.zip", frames) == []
    entries = {"alpha/": b"", "beta/": b""} | {name: (preds / name).read_bytes() for name in EXPECTED_NAMES}
    other = _zip(tmp_path / "other.zip", entries)
    assert check_zip(other, frames) == []
    summary = summarize_zip(other, frames)
    assert (summary.videos, summary.frames, summary.max_ids) == (2, 5, 2)


def test_check_zip_wrapper_folder_is_one_problem(test_set, tmp_path):
    preds, frames = test_set
    bad = _zip(tmp_path / "bad.zip", {f"run1/{name}": (preds / name).read_bytes() for name in EXPECTED_NAMES})
    [problem] = check_zip(bad, frames)
    assert problem.path == bad / "run1" and "wrapper folder" in problem.message


def test_folder_with_a_wrapper_folder_is_one_problem(test_set, tmp_path):
    preds, frames = test_set
    wrapped = tmp_path / "outer"
    shutil.copytree(preds, wrapped / "run1")
    [problem] = check_predictions(wrapped, frames)
    assert problem.path == wrapped / "run1" and "wrapper folder" in problem.message


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_check_zip_duplicate_entry(test_set, tmp_path):
    preds, frames = test_set
    bad = _zip(tmp_path / "bad.zip", {name: (preds / name).read_bytes() for name in EXPECTED_NAMES})
    with zipfile.ZipFile(bad, "a") as archive:
        archive.writestr("beta/00005.png", (preds / "beta/00005.png").read_bytes())
    [problem] = check_zip(bad, frames)
    assert problem.path == bad / "beta/00005.png" and problem.message.startswith("appears 2 times")


def test_check_zip_extra_and_missing_files(test_set, tmp_path):
    preds, frames = test_set
    entries = {name: (preds / name).read_bytes() for name in EXPECTED_NAMES if name != "beta/00006.png"}
    entries["README.txt"] = b"hello"
    entries["__MACOSX/alpha/._00000.png"] = b"junk"
    bad = _zip(tmp_path / "bad.zip", entries)
    problems = check_zip(bad, frames)
    assert all(p.is_error for p in problems)
    assert sorted(str(p.path) for p in problems) == sorted(
        str(bad / name) for name in ["README.txt", "__MACOSX", "beta/00006.png"])


def test_check_zip_reads_pixels_size_and_ids_from_the_zip(test_set, tmp_path):
    preds, frames = test_set
    entries = {name: (preds / name).read_bytes() for name in EXPECTED_NAMES}
    rgb = io.BytesIO()
    Image.new("RGB", (30, 20)).save(rgb, format="PNG")
    entries["alpha/00000.png"] = rgb.getvalue()
    bad = _zip(tmp_path / "bad.zip", entries)
    [problem] = check_zip(bad, frames)
    assert problem.path == bad / "alpha/00000.png" and "RGB mask" in problem.message

    # a second zip whose alpha holds 9 ids (as L masks, accepted as they are)
    entries = {name: (preds / name).read_bytes() for name in EXPECTED_NAMES if name.startswith("beta/")}
    for stem, ids in zip(["00000", "00001", "00002"], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]):
        buffer = io.BytesIO()
        Image.fromarray(person_mask(20, 30, ids), mode="L").save(buffer, format="PNG")
        entries[f"alpha/{stem}.png"] = buffer.getvalue()
    many = _zip(tmp_path / "many.zip", entries)
    [problem] = check_zip(many, frames)
    assert problem.path == many / "alpha" and problem.message.startswith("9 distinct ids")


def test_check_zip_on_a_file_that_is_not_a_zip(tmp_path, test_set):
    from vcseg.errors import VcsegError

    _, frames = test_set
    (tmp_path / "no.zip").write_bytes(b"not a zip")
    with pytest.raises(VcsegError, match="not a readable zip"):
        check_zip(tmp_path / "no.zip", frames)


# ---- never lose or fake a result ----------------------------------------------------------------

PREDICT_OWN_FILES = [".predict_log.json", ".predict_log.shard-0-of-2.json", ".predict_log.shard-1-of-2.json",
                     ".vcseg-predict/lock", ".vcseg-predict/shard-0-of-2.lock", ".vcseg-predict/videos/alpha.json",
                     ".vcseg-predict/partial/beta/00005.png"]


def _write(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"predict's own")


def test_predicts_logs_and_state_folder_are_skipped_without_a_warning(test_set, tmp_path):
    preds, frames = test_set
    _write(preds, PREDICT_OWN_FILES)
    summary = write_submission(preds, frames, tmp_path / "s.zip")
    assert sorted(zip_entries(tmp_path / "s.zip")) == EXPECTED_NAMES
    assert summary.warnings == []
    assert check_predictions(preds, frames) == []


def test_other_hidden_files_beside_predicts_own_still_warn(test_set, tmp_path):
    preds, frames = test_set
    _write(preds, PREDICT_OWN_FILES)
    # look-alikes are not predict's: a renamed log, a log inside a video folder, a similar folder
    strays = [".DS_Store", ".predict_log.json.bak", "alpha/.predict_log.json", ".vcseg-predict-old/lock"]
    _write(preds, strays)
    summary = write_submission(preds, frames, tmp_path / "s.zip")
    assert sorted(zip_entries(tmp_path / "s.zip")) == EXPECTED_NAMES
    assert sorted((str(w.path), w.severity, w.message) for w in summary.warnings) == sorted(
        (str(preds / name.split("/")[0] if name.startswith(".vcseg") else preds / name), "warning",
         "hidden (1 file(s)); ignored, not packed") for name in strays)


def test_predicts_log_inside_a_zip_is_still_an_error(test_set, tmp_path):
    # in a zip every entry ships: the log would reach the leaderboard
    preds, frames = test_set
    entries = {name: (preds / name).read_bytes() for name in EXPECTED_NAMES} | {".predict_log.json": b"{}"}
    bad = _zip(tmp_path / "bad.zip", entries)
    [problem] = check_zip(bad, frames)
    assert problem.is_error and problem.path == bad / ".predict_log.json"


@pytest.mark.parametrize(("name", "ours"), [
    (".predict_log.json", True), (".predict_log.shard-3-of-8.json", True), (".vcseg-predict", True),
    (".vcseg-predict/partial/v/00001.png", True), (".predict_log.shard-a-of-b.json", False),
    (".predict_log.json.tmp", False), ("v/.predict_log.json", False), ("v/.vcseg-predict/lock", False),
    (".DS_Store", False), ("v/00001.png", False), ("", False)])
def test_is_predict_bookkeeping(name, ours):
    from vcseg.io.predict_files import is_predict_bookkeeping, predict_log_name

    assert is_predict_bookkeeping(name) is ours
    assert is_predict_bookkeeping(predict_log_name((0, 1))) and is_predict_bookkeeping(predict_log_name((2, 4)))


def test_test_video_without_frames_is_a_warning_naming_its_folder(test_set, tmp_path):
    preds, frames = test_set
    (frames / "gamma").mkdir()  # a test video folder holding no JPG
    (frames / "gamma" / "notes.txt").write_text("not a frame")
    summary = write_submission(preds, frames, tmp_path / "s.zip")
    assert sorted(zip_entries(tmp_path / "s.zip")) == EXPECTED_NAMES  # no gamma/ in the zip
    assert [(w.severity, w.path, w.message) for w in summary.warnings] == [
        ("warning", frames / "gamma", "no frames; no masks expected, the zip has no folder for it")]
    assert summary.videos == 2
    # the same warning when checking the zip
    assert [(p.severity, p.path) for p in check_zip(tmp_path / "s.zip", frames)] == [("warning", frames / "gamma")]


def test_masks_for_a_test_video_without_frames_are_named_as_such(test_set):
    preds, frames = test_set
    (frames / "gamma").mkdir()
    write_mask(preds / "gamma" / "00000.png", person_mask(18, 26, [1]))
    [problem] = errors(check_predictions(preds, frames))
    assert problem.path == preds / "gamma"
    assert problem.message.startswith(f"extra video: test video 'gamma' has no frames in {frames / 'gamma'}")


def test_empty_prediction_folder_for_a_video_with_frames_is_an_error(test_set, tmp_path):
    preds, frames = test_set
    for png in (preds / "beta").iterdir():
        png.unlink()  # the folder stays, empty
    with pytest.raises(SubmissionInvalid) as refused:
        write_submission(preds, frames, tmp_path / "s.zip")
    [problem] = errors(refused.value.problems)
    assert problem.path == preds / "beta"
    assert problem.message.startswith("missing video: no masks for test video 'beta' (2 frames)")
    assert not (tmp_path / "s.zip").exists()


@pytest.mark.parametrize("where", ["unwritable", "under_a_file"])
def test_unwritable_out_is_refused_before_any_png_is_read(test_set, tmp_path, unwritable_dir, monkeypatch, where):
    import vcseg.pack.submission as submission
    from vcseg.errors import VcsegError

    preds, frames = test_set
    calls = []
    monkeypatch.setattr(submission, "find_test_videos", lambda *a: calls.append(a) or 1 / 0)
    if where == "unwritable":
        out = unwritable_dir / "s.zip"
    else:
        (tmp_path / "notes.txt").write_text("a file")
        out = tmp_path / "notes.txt" / "s.zip"
    with pytest.raises(VcsegError) as refused:
        write_submission(preds, frames, out)
    assert str(refused.value).startswith(f"{out}: ") and str(refused.value).endswith("choose another --out")
    assert calls == [] and not out.exists()
