from __future__ import annotations

import pytest

from tests.conftest import write_frame
from vcseg.errors import VcsegError
import numpy as np
from PIL import Image

from vcseg.io.frames import image_size, jpeg_size, numbering_gaps, read_frame, sorted_stems


def test_natural_order():
    assert sorted_stems(["frame10", "frame2", "frame1"]) == ["frame1", "frame2", "frame10"]
    assert sorted_stems(["00010", "00009", "00100"]) == ["00009", "00010", "00100"]


def test_numbering_gaps():
    assert numbering_gaps(["00001", "00002", "00004", "00005", "00009"]) == [("00002", "00004"), ("00005", "00009")]
    assert numbering_gaps(["a", "b"]) == []


def test_read_frame_odd_size_and_truncated(tmp_path):
    write_frame(tmp_path / "f.jpg", 481, 853)
    assert read_frame(tmp_path / "f.jpg").shape == (481, 853, 3)
    assert image_size(tmp_path / "f.jpg") == (481, 853)
    data = (tmp_path / "f.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(VcsegError, match=r"t\.jpg: cannot decode frame"):
        read_frame(tmp_path / "t.jpg")


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_size_reads_the_frame_header(tmp_path, progressive):
    Image.new("RGB", (853, 481), (10, 20, 30)).save(tmp_path / "f.jpg", progressive=progressive)
    data = (tmp_path / "f.jpg").read_bytes()
    assert jpeg_size(data) == image_size(tmp_path / "f.jpg") == (481, 853)
    assert jpeg_size(np.frombuffer(data, dtype=np.uint8)) == (481, 853)
    assert jpeg_size(data[:20]) is None  # cut before the frame header
    assert jpeg_size(b"\x89PNG\r\n\x1a\n") is None
