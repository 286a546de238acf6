"""Writing browser-playable MP4s (H.264, yuv420p) with PyAV, which brings its own FFmpeg and x264.

    with Mp4Writer(path, width, height, fps=12) as writer:   # width and height even
        writer.write(rgb)                                    # (height, width, 3) uint8
        writer.write(to_yuv(rgb))                            # or converted before, in any thread

The file is tagged (`comment` = VIZ_TAG) so that a later run can tell its own outputs from a
user's file of the same name (`written_by_viz`).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import av
import cv2
import numpy as np

VIZ_TAG = "vcseg viz"
PRESET = "ultrafast"  # ~3x faster than veryfast; the files are larger, which a preview can afford
# A constant quantiser rather than a quality target (crf): without rate control x264 skips the
# look-ahead analysis, a quarter of its time at this preset, and at QP 23 the overlays come out
# as sharp in a third fewer bytes than at crf 23 on our videos.
QP = 23


class Mp4Writer:
    """An H.264 yuv420p MP4 at `path` (any name: the format is set, not guessed from the suffix).

    threads: x264's threads; 0, as many as it sees fit (frame threads, encoding beside the caller's
    drawing); 1, encoding in the calling thread, the least work in all where every core is busy.
    """

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, fps: float, *,
                 threads: int = 0) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs an even width and height, got {width}x{height}")
        self.width, self.height = width, height
        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            self.container.metadata["comment"] = VIZ_TAG
            self.stream = self.container.add_stream("libx264", rate=_rate(fps),
                                                    options={"qp": str(QP), "preset": PRESET})
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
            if threads != 1:
                self.stream.codec_context.thread_type = "FRAME"  # x264's frame threads: encodes beside our drawing
            self.stream.codec_context.thread_count = threads
        except BaseException:
            self.container.close()
            raise

    def write(self, frame: np.ndarray | av.VideoFrame) -> None:
        """Append one frame: a `(height, width, 3)` uint8 RGB array, or a frame from `to_yuv`."""
        if isinstance(frame, np.ndarray):
            frame = to_yuv(frame)
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        try:
            self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is None:
            self.close()
        else:  # the file is thrown away: do not wait for the encoder
            self.container.close()


def to_yuv(rgb: np.ndarray) -> av.VideoFrame:
    """The encoder's yuv420p frame of a `(height, width, 3)` uint8 RGB array (even sizes).

    OpenCV converts (BT.601, limited range, as FFmpeg's default for yuv420p; chroma the mean of
    each 2x2 block) in a fifth of the time FFmpeg's scaler takes; it runs in any thread. Its
    planes are copied straight into the frame's (padded) ones: PyAV's `from_ndarray` copies
    each twice, through a bytes object, which took longer than the conversion."""
    height, width = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).ravel()  # Y, then U, then V, each unpadded
    frame = av.VideoFrame(width, height, "yuv420p")
    start = 0
    for plane in frame.planes:
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
        rows[:, :plane.width] = i420[start:start + plane.height * plane.width].reshape(plane.height, plane.width)
        start += plane.height * plane.width
    return frame


def _rate(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def written_by_viz(path: Path) -> bool:
    """True if the MP4 at `path` carries VIZ_TAG (a file of an earlier `vcseg viz` run).

    The comment is read from the file's boxes (moov/udta/meta/ilst/\xa9cmt/data, near the start
    with +faststart) rather than by FFmpeg, which would probe the streams (a few ms per file)."""
    try:
        with open(path, "rb") as file:
            movie = _top_level_box(file, b"moov")
    except (OSError, struct.error):  # unreadable, or cut short inside a box header
        return False
    at = movie.find(b"\xa9cmt") if movie is not None else -1
    if at < 4:
        return False
    data = movie[at + 4:]  # one box: size, "data", type, locale, the text
    size = int.from_bytes(data[:4], "big")
    return data[4:8] == b"data" and data[16:size] == VIZ_TAG.encode()


def _top_level_box(file, kind: bytes, limit: int = 1 << 26) -> bytes | None:
    """The body of the first top-level box of type `kind` in an ISO media file (None: none, a box
    over `limit` bytes or cut short, or not such a file)."""
    end = os.fstat(file.fileno()).st_size
    position = 0
    while position + 8 <= end:
        file.seek(position)
        size, found = struct.unpack(">I4s", file.read(8))
        header = 8
        if size == 1:  # a 64-bit size follows
            (size,), header = struct.unpack(">Q", file.read(8)), 16
        elif size == 0:  # the box runs to the end of the file
            size = end - position
        if size < header:
            return None
        if found == kind:
            body = file.read(size - header) if size - header <= limit else b""
            return body if len(body) == size - header else None  # None: too large, or cut short
        position += size
    return None
