"""The prediction output folder: what `vcseg predict` owns in it, and what made each video.

    OUT/<video>/<stem>.png               the masks
    OUT/.predict_log.json                timings (`.predict_log.shard-I-of-N.json` per shard)
    OUT/.vcseg-predict/lock              held by every run on OUT: exclusive, or shared by the
                                         shards of one sharded run
    OUT/.vcseg-predict/shard-I-of-N.lock held by the run predicting shard I of N
    OUT/.vcseg-predict/videos/<video>.json
                                         per video: what made its masks (the fingerprint) and the
                                         SHA-256 of every PNG written
    OUT/.vcseg-predict/partial/<video>/  the masks of a video being predicted, moved into
                                         OUT/<video>/ one file at a time when the video is done

Resume by content: a video is skipped only when its record says it is complete, its fingerprint
(checkpoint digests, the options that change masks, the frames' names and byte sizes, the first
masks' digest) equals this run's, and every PNG still hashes to what was written. Ownership:
predict replaces or deletes only files its records list (or, with `overwrite`, the PNGs at the
names it writes); every other file in OUT is left as it is. Nothing here imports torch, so the
CLI can take the lock before loading the heavy stack.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vcseg.errors import VcsegError
from vcseg.io.atomic import write_json_atomic
from vcseg.io.outputs import OutputLock, remove_orphan_temporaries
from vcseg.io.predict_files import PREDICT_STATE_DIR

RECORD_VERSION = 1
COMPLETE, WRITING = "complete", "writing"


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n; None -> this torchrun rank's share (RANK/WORLD_SIZE), else (0, 1)."""
    if text is None:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise VcsegError(f"--shard {text!r}: write INDEX/COUNT, e.g. 0/4 for the first of four shards") from None
    if count < 1 or not 0 <= index < count:
        raise VcsegError(f"--shard {text!r}: INDEX must be in 0..COUNT-1 and COUNT at least 1")
    return index, count


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def json_digest(value: Any) -> str:
    """SHA-256 of a JSON-able value, independent of dict order."""
    return bytes_digest(json.dumps(value, sort_keys=True, default=str).encode())


def frames_digest(frames: Mapping[str, Path]) -> str:
    """The frames' stems, file names and byte sizes: a changed, added, removed or re-encoded frame
    changes it, while copying the dataset elsewhere does not."""
    return json_digest([(stem, path.name, path.stat().st_size) for stem, path in frames.items()])


def masks_digest(masks: Mapping[str, Path]) -> str:
    """The given masks' stems and contents."""
    return json_digest(sorted((stem, file_digest(path)) for stem, path in masks.items()))


def check_not_inside_inputs(out: Path, inputs: Mapping[str, str | os.PathLike[str] | None]) -> None:
    """Refuse an output folder that is, contains or lies inside an input folder (by real path)."""
    real_out = Path(os.path.realpath(out))
    for option, root in inputs.items():
        if root is None:
            continue
        real_root = Path(os.path.realpath(root))
        if real_out == real_root or real_root in real_out.parents or real_out in real_root.parents:
            relation = ("is" if real_out == real_root else
                        "lies inside" if real_root in real_out.parents else "contains")
            raise VcsegError(f"--out {out} {relation} the {option} folder {root}; predictions need a "
                             "folder of their own, e.g. --out pred/")


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Readable differences between two fingerprints: 'options.size 480 -> 240'."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in list(new) + [key for key in old if key not in new]:
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    if old == new:
        return []
    name = prefix.rstrip(".")
    if _holds_digest(old) or _holds_digest(new):
        return [f"{name} changed"]  # a digest's value means nothing to a reader
    return [f"{name} {old} -> {new}"]


def _holds_digest(value: Any) -> bool:
    if isinstance(value, list):
        return any(_holds_digest(item) for item in value)
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


class PredictOutput:
    """The output folder of one `vcseg predict` run (or one shard of it).

        output = PredictOutput(out, shard=(0, 1))
        with output.locked():
            reason = output.why_redo(video, stems, fingerprint)   # None: skip it
            partial = output.start(video)                         # write the PNGs here
            output.finish(video, stems, fingerprint, overwrite=False)
    """

    def __init__(self, out: str | os.PathLike[str], shard: tuple[int, int] = (0, 1)) -> None:
        self.out = Path(out)
        self.shard = shard
        self.state = self.out / PREDICT_STATE_DIR

    # ---- the lock -------------------------------------------------------------------------------

    def locked(self) -> _Locks:
        """Exclusive use of OUT, or of this shard of it (shards of one run share OUT)."""
        index, count = self.shard
        if count == 1:
            return _Locks([OutputLock(self.state / "lock", "vcseg predict", guards=self.out)])
        return _Locks([OutputLock(self.state / "lock", "vcseg predict", shared=True, guards=self.out),
                       OutputLock(self.state / f"shard-{index}-of-{count}.lock",
                                  f"vcseg predict --shard {index}/{count}", guards=self.out)])

    # ---- records --------------------------------------------------------------------------------

    def record_path(self, video: str) -> Path:
        return self.state / "videos" / f"{video}.json"

    def partial_path(self, video: str) -> Path:
        return self.state / "partial" / video

    def read_record(self, video: str) -> dict[str, Any] | None:
        """The video's record, or None when there is none or it cannot be read (then nothing in
        the video's folder counts as predict's own)."""
        try:
            record = json.loads(self.record_path(video).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
            return None
        return record

    def owned_files(self, video: str) -> dict[str, str]:
        """File name -> SHA-256 of the files predict wrote (or was about to write) in OUT/<video>/."""
        record = self.read_record(video)
        return dict(record["files"]) if record is not None else {}

    def why_redo(self, video: str, stems: Sequence[str], fingerprint: dict[str, Any]) -> str | None:
        """None when OUT/<video> is complete and made exactly as this run would make it; else why not."""
        record = self.read_record(video)
        folder = self.out / video
        if record is None:
            return "no record of a finished prediction" if folder.exists() else "not predicted yet"
        if record.get("state") != COMPLETE:
            return "an earlier run stopped while writing it"
        changed = _differences(record.get("fingerprint", {}), fingerprint)
        if changed:
            return "; ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        names = [f"{stem}.png" for stem in stems]
        if set(names) != set(record["files"]):
            return "its frames changed"
        for name in names:
            path = folder / name
            if not path.is_file():
                return f"{path} is missing"
            if file_digest(path) != record["files"][name]:
                return f"{path} is not the file predict wrote (damaged or edited)"
        return None

    def foreign_files(self, video: str, stems: Sequence[str]) -> list[Path]:
        """Files at the names this run would write in OUT/<video>/ that predict did not write."""
        folder = self.out / video
        if folder.exists() and not folder.is_dir():
            return [folder]
        if not folder.is_dir():
            return []
        owned = self.owned_files(video)
        return [folder / f"{stem}.png" for stem in stems
                if f"{stem}.png" not in owned and os.path.lexists(folder / f"{stem}.png")]

    # ---- writing a video ------------------------------------------------------------------------

    def clean_leftovers(self, videos: Sequence[str]) -> None:
        """Remove what killed runs of this shard left: temporary folders of `videos`, and the
        temporary files of writes whose process is gone. Never anything outside predict's own."""
        for video in videos:
            partial = self.partial_path(video)
            if partial.is_dir():
                shutil.rmtree(partial)
            legacy = self.out / f".{video}.partial"  # where vcseg before 0.1.1 kept it
            if legacy.is_dir() and all(p.suffix == ".png" for p in legacy.iterdir()):
                shutil.rmtree(legacy)
        for folder in (self.out, self.state / "videos"):
            remove_orphan_temporaries(folder)

    def start(self, video: str) -> Path:
        """An empty temporary folder for the video's PNGs."""
        partial = self.partial_path(video)
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        return partial

    def finish(self, video: str, stems: Sequence[str], fingerprint: dict[str, Any], *,
               overwrite: bool = False) -> None:
        """Move the finished PNGs from the temporary folder into OUT/<video>/ and record them.

        The record first lists, as "writing", every file predict may touch (the old ones and the
        new), so that a run killed in the middle of the moves still knows them for its own; once
        the moves are done it says "complete" with the new files' digests. A file of an earlier
        prediction that this one does not write (a frame that left the video) is deleted only if
        it is still what predict wrote.
        """
        partial = self.partial_path(video)
        folder = self.out / video
        names = [f"{stem}.png" for stem in stems]
        written = {name: file_digest(partial / name) for name in names}
        foreign = self.foreign_files(video, stems)
        if foreign and not overwrite:
            raise VcsegError(f"{foreign[0]}: not written by vcseg predict into this output; choose another "
                             "--out, or pass --overwrite to replace such files")
        old = self.owned_files(video)
        self._write_record(video, WRITING, fingerprint, {**old, **written})
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = folder / name
            if target.is_dir() and not target.is_symlink():
                raise VcsegError(f"{target}: is a folder where a mask goes; move it away")
            os.replace(partial / name, target)
        for name, digest in old.items():
            stale = folder / name
            if name not in written and stale.is_file() and file_digest(stale) == digest:
                stale.unlink()
        self._write_record(video, COMPLETE, fingerprint, written)
        shutil.rmtree(partial, ignore_errors=True)

    def _write_record(self, video: str, state: str, fingerprint: dict[str, Any], files: dict[str, str]) -> None:
        write_json_atomic(self.record_path(video), {"version": RECORD_VERSION, "state": state,
                                                    "fingerprint": fingerprint, "files": files})


class _Locks:
    """Several `OutputLock`s taken in order and released in reverse, as one context manager."""

    def __init__(self, locks: list[OutputLock]) -> None:
        self.locks = locks

    def __enter__(self) -> _Locks:
        taken: list[OutputLock] = []
        try:
            for lock in self.locks:
                taken.append(lock.acquire())
        except BaseException:
            for lock in reversed(taken):
                lock.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for lock in reversed(self.locks):
            lock.release()
