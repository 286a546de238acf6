"""Writing browser-playable MP4s (H.264, yuv420p) with PyAV, which brings its own FFmpeg and x264.

    with Mp4Writer(path, width, height, fps=12) as writer:   # width and height even
        writer.write(rgb)                                    # (height, width, 3) uint8
        frame, pixels = rgb_frame(width, height)             # or draw into a frame's own pixels
        writer.write(to_yuv(frame))                          # (converted in any thread)

The file is tagged (`comment` = VIZ_TAG) so that a later run can tell its own outputs from a
user's file of the same name (`written_by_viz`).
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

VIZ_TAG = "vcseg viz"
PRESET = "ultrafast"  # ~3x faster than veryfast; the files are larger, which a preview can afford
CRF = 23


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
                                                    options={"crf": str(CRF), "preset": PRESET})
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
            frame = to_yuv(av.VideoFrame.from_ndarray(frame, format="rgb24"))
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


def rgb_frame(width: int, height: int) -> tuple[av.VideoFrame, np.ndarray]:
    """A black rgb24 frame and a writable `(height, width, 3)` view of its pixels: draw into the view,
    then `to_yuv(frame)`, without copying the picture into the frame."""
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    pixels = np.frombuffer(plane, dtype=np.uint8).reshape(height, plane.line_size)[:, :width * 3]
    pixels = pixels.reshape(height, width, 3)
    pixels[...] = 0
    return frame, pixels


_per_thread = threading.local()


def to_yuv(frame: av.VideoFrame) -> av.VideoFrame:
    """A new yuv420p copy of `frame`, the encoder's input. Thread-safe (one converter per thread,
    kept: building FFmpeg's converter costs more than converting a frame)."""
    reformatter = getattr(_per_thread, "reformatter", None)
    if reformatter is None:
        reformatter = _per_thread.reformatter = VideoReformatter()
    return reformatter.reformat(frame, format="yuv420p", interpolation="POINT", threads=1)


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
