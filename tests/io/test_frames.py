from __future__ import annotations

import pytest

from tests.conftest import write_frame
from vcseg.errors import VcsegError
from vcseg.io.frames import image_size, numbering_gaps, read_frame, sorted_stems


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
