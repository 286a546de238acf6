"""The leaderboard zip: check predictions, write the zip, check a finished zip.

    problems = check_predictions("preds", "data/test")          # list[Problem], nothing written
    summary = write_submission("preds", "data/test", "submissions/run1.zip")
    problems = check_zip("submissions/run1.zip", "data/test")   # the same checks, on the zip

All three run the one validation pass of `vcseg.pack.validate` on a `MaskSource`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vcseg.errors import Problem, VcsegError
from vcseg.io.outputs import check_writable_file
from vcseg.pack.png import indexed_png
from vcseg.pack.sources import FolderSource, ZipSource
from vcseg.pack.validate import Progress, Validation, find_test_videos, validate_source
from vcseg.pack.zipwrite import write_zip


class SubmissionInvalid(VcsegError):
    """Validation found errors, so no zip was written; `problems` lists them all."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class PackSummary:
    """What was packed (or checked): counts, ids per video, the zip's path and size."""

    path: Path
    videos: int
    frames: int
    ids_per_video: dict[str, int]
    zip_bytes: int
    fixed: int = 0  # PNGs re-encoded by --fix
    warnings: list[Problem] = field(default_factory=list)

    @property
    def max_ids(self) -> int:
        return max(self.ids_per_video.values(), default=0)

    @property
    def max_ids_video(self) -> str | None:
        """The video with the most ids (the first by name among ties)."""
        if not self.ids_per_video:
            return None
        return max(sorted(self.ids_per_video), key=lambda video: self.ids_per_video[video])


def validate_predictions(pred_dir: str | os.PathLike[str], frames_root: str | os.PathLike[str], *,
                         fix: bool = False, progress: Progress | None = None) -> Validation:
    """The full validation of a predictions folder against the test frames."""
    frames, empty = find_test_videos(frames_root)
    with FolderSource(pred_dir) as source:
        return validate_source(source, frames, fix=fix, progress=progress, empty_videos=empty)


def validate_zip(zip_path: str | os.PathLike[str], frames_root: str | os.PathLike[str], *,
                 progress: Progress | None = None) -> Validation:
    """The full validation of a finished zip (read in memory) against the test frames."""
    frames, empty = find_test_videos(frames_root)
    with ZipSource(zip_path) as source:
        return validate_source(source, frames, progress=progress, empty_videos=empty)


def check_predictions(pred_dir: str | os.PathLike[str], frames_root: str | os.PathLike[str], *,
                      fix: bool = False) -> list[Problem]:
    """Every problem that would stop `write_submission` (and the warnings), all at once."""
    return validate_predictions(pred_dir, frames_root, fix=fix).problems


def check_zip(zip_path: str | os.PathLike[str], frames_root: str | os.PathLike[str]) -> list[Problem]:
    """Every problem of an existing submission zip: layout, missing frames, size, channels, ids."""
    return validate_zip(zip_path, frames_root).problems


def _refusal(what: Path, errors: list[Problem], consequence: str) -> str:
    return f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in {what}; {consequence}"


def write_submission(pred_dir: str | os.PathLike[str], frames_root: str | os.PathLike[str],
                     out: str | os.PathLike[str], *, fix: bool = False,
                     progress: Progress | None = None) -> PackSummary:
    """Validate `pred_dir` against the test frames and write the submission zip `out`.

    `out` is checked writable before anything is read (VcsegError naming it otherwise). Nothing is
    written unless validation finds no error: then SubmissionInvalid lists them all.
    PNG bytes are copied as they are; with `fix`, L and 1-bit masks are re-encoded as indexed
    PNGs (0/255 binary: 255 becomes id 1; other values are kept as ids). The zip is deterministic
    and replaces `out` atomically. `progress(done, total)` is called through the checks, then
    again through the writing.
    """
    out = Path(out)
    if out.is_dir():
        raise VcsegError(f"{out}: is a directory; give the zip's file name, e.g. {out / 'submission.zip'}")
    check_writable_file(out, "--out")  # before the checks, which read every PNG
    frames, empty = find_test_videos(frames_root)
    with FolderSource(pred_dir) as source:
        validation = validate_source(source, frames, fix=fix, progress=progress, empty_videos=empty)
        if not validation.ok:
            raise SubmissionInvalid(_refusal(source.root, validation.errors, f"{out} not written"),
                                    validation.problems)
        planned = {mask.arcname: mask for mask in validation.masks}

        def read(arcname: str) -> bytes:
            mask = planned[arcname]
            data = source.read(mask.name)
            return indexed_png(data, mask.conversion) if mask.conversion else data

        zip_bytes = write_zip(out, planned, read, progress=progress)
    return PackSummary(path=out, videos=len(frames), frames=len(planned),
                       ids_per_video=validation.ids_per_video, zip_bytes=zip_bytes,
                       fixed=sum(mask.conversion is not None for mask in planned.values()),
                       warnings=validation.warnings)


def summarize_zip(zip_path: str | os.PathLike[str], frames_root: str | os.PathLike[str], *,
                  progress: Progress | None = None) -> PackSummary:
    """Check an existing zip; SubmissionInvalid with every problem if it is not a valid submission,
    else its summary."""
    zip_path = Path(zip_path)
    validation = validate_zip(zip_path, frames_root, progress=progress)
    if not validation.ok:
        raise SubmissionInvalid(_refusal(zip_path, validation.errors, "not a valid submission"),
                                validation.problems)
    return PackSummary(path=zip_path, videos=len(validation.ids_per_video), frames=len(validation.masks),
                       ids_per_video=validation.ids_per_video, zip_bytes=zip_path.stat().st_size,
                       warnings=validation.warnings)
