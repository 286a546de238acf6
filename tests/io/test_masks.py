from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vcseg.errors import VcsegError
from vcseg.io.masks import (RGB_MASKS_OPTION_HINT, MaskKind, RgbIdMap, davis_palette, read_mask,
                            read_mask_with_kind, write_mask)


def test_davis_palette_known_colours():
    palette = davis_palette()
    # The PASCAL VOC / DAVIS colour map: id 1 dark red, 2 dark green, 3 olive, 4 navy.
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0]
    assert palette[3].tolist() == [128, 128, 0]
    assert palette[4].tolist() == [0, 0, 128]
    assert palette[255].tolist() == [224, 224, 192]


def test_indexed_round_trip(tmp_path):
    ids = np.arange(60, dtype=np.uint8).reshape(6, 10) % 9
    write_mask(tmp_path / "m.png", ids)
    with Image.open(tmp_path / "m.png") as image:
        assert image.mode == "P"
        assert image.getpalette()[3:6] == [128, 0, 0]
    back, kind = read_mask_with_kind(tmp_path / "m.png")
    assert kind is MaskKind.INDEXED
    np.testing.assert_array_equal(back, ids)


def test_write_is_atomic_and_leaves_no_temp(tmp_path):
    write_mask(tmp_path / "m.png", np.zeros((3, 3), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]
    with pytest.raises(ValueError):
        write_mask(tmp_path / "bad.png", np.zeros((2, 2, 2), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]


def test_gray_values_are_ids(tmp_path):
    ids = np.array([[0, 1, 2], [3, 3, 0]], np.uint8)
    Image.fromarray(ids, mode="L").save(tmp_path / "g.png")
    back, kind = read_mask_with_kind(tmp_path / "g.png")
    assert kind is MaskKind.GRAY
    np.testing.assert_array_equal(back, ids)


def test_binary_255_becomes_id_1_unless_raw(tmp_path):
    raw = np.array([[0, 255], [255, 0]], np.uint8)
    Image.fromarray(raw, mode="L").save(tmp_path / "b.png")
    back, kind = read_mask_with_kind(tmp_path / "b.png")
    assert kind is MaskKind.BINARY
    np.testing.assert_array_equal(back, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(read_mask(tmp_path / "b.png", binary_to_id=False), raw)


def test_rgb_refused_with_advice(tmp_path):
    Image.new("RGB", (4, 4), (128, 0, 0)).save(tmp_path / "c.png")
    with pytest.raises(VcsegError) as refused:
        read_mask(tmp_path / "c.png")
    # no caller hint: the advice names no option, since most commands have none to offer
    assert str(refused.value) == (f"{tmp_path / 'c.png'}: RGB mask; save it as an indexed PNG "
                                  "(mode P, pixel = person id)")
    with pytest.raises(VcsegError) as refused:
        read_mask(tmp_path / "c.png", rgb_hint=RGB_MASKS_OPTION_HINT)
    assert str(refused.value).endswith("person id) or pass --rgb-masks to map each colour to an id")


def test_rgb_mapped_consistently_across_frames(tmp_path):
    first = np.zeros((2, 3, 3), np.uint8)
    first[0, 0] = (0, 128, 0)  # DAVIS colour of id 2
    first[1, 2] = (10, 20, 30)  # not a palette colour: next free id
    second = np.zeros((2, 3, 3), np.uint8)
    second[1, 1] = (10, 20, 30)
    Image.fromarray(first).save(tmp_path / "a.png")
    Image.fromarray(second).save(tmp_path / "b.png")
    colours = RgbIdMap()
    a = read_mask(tmp_path / "a.png", rgb_map=colours)
    b = read_mask(tmp_path / "b.png", rgb_map=colours)
    assert a[0, 0] == 2 and a[1, 2] == 1 and b[1, 1] == 1
    assert int(a.sum()) == 3 and int(b.sum()) == 1


def test_16_bit(tmp_path):
    small = np.array([[0, 7], [1, 0]], np.uint16)
    Image.fromarray(small).save(tmp_path / "s.png")  # mode I;16
    back, kind = read_mask_with_kind(tmp_path / "s.png")
    assert kind is MaskKind.WIDE
    np.testing.assert_array_equal(back, small)
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path / "l.png")
    with pytest.raises(VcsegError, match=r"l\.png: 16-bit mask with ids up to 300"):
        read_mask(tmp_path / "l.png")


def test_truncated_and_missing(tmp_path):
    write_mask(tmp_path / "m.png", np.ones((50, 50), np.uint8))
    data = (tmp_path / "m.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(VcsegError, match=r"t\.png: cannot read mask"):
        read_mask(tmp_path / "t.png")
    with pytest.raises(VcsegError, match="not found"):
        read_mask(tmp_path / "nope.png")


def _png(pixels: np.ndarray, filters: list[int], colour_type: int, idat_parts: int = 1) -> bytes:
    """An 8-bit PNG of `pixels` written by hand with the given filter per row (0 None, 1 Sub, 2 Up),
    its compressed data split over `idat_parts` IDAT chunks: filters PIL's writer never picks."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = pixels.shape
    rows, previous = [], np.zeros(width, dtype=np.int64)
    for row, kind in zip(pixels.astype(np.int64), filters):
        coded = {0: row, 1: row - np.concatenate([[0], row[:-1]]), 2: row - previous}[kind]
        rows.append(bytes([kind]) + (coded % 256).astype(np.uint8).tobytes())
        previous = row
    compressed = zlib.compress(b"".join(rows))
    step = -(-len(compressed) // idat_parts)
    chunks = [chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))]
    if colour_type == 3:
        chunks.append(chunk(b"PLTE", davis_palette().tobytes()))
    chunks += [chunk(b"IDAT", compressed[i:i + step]) for i in range(0, len(compressed), step)]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks) + chunk(b"IEND", b"")


@pytest.mark.parametrize("filters", ["none", "sub", "mixed", "up"])
@pytest.mark.parametrize("colour_type", [0, 3])
def test_every_row_filter_reads_as_pil_reads_it(tmp_path, filters, colour_type):
    # read_mask decodes None/Sub rows itself (DAVIS's tools write Sub) and leaves Up to PIL; the ids
    # must be the same either way, and PIL's own reading is the reference
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 6, (9, 13)).astype(np.uint8) * 40  # wraps past 255 under Sub
    pixels[2:5, 3:9] = 255
    row_filters = {"none": [0] * 9, "sub": [1] * 9, "mixed": [0, 1, 1, 0, 1, 0, 0, 1, 1],
                   "up": [0, 2, 1, 2, 2, 0, 1, 2, 0]}[filters]
    path = tmp_path / "m.png"
    path.write_bytes(_png(pixels, row_filters, colour_type, idat_parts=3))
    with Image.open(path) as image:
        reference = np.asarray(image)
        assert image.mode == ("P" if colour_type == 3 else "L")
    np.testing.assert_array_equal(reference, pixels)
    back, kind = read_mask_with_kind(path, binary_to_id=False)
    np.testing.assert_array_equal(back, pixels)
    assert kind is (MaskKind.INDEXED if colour_type == 3 else MaskKind.GRAY)


def test_binary_sub_filtered_mask_as_davis_writes_it(tmp_path):
    pixels = np.zeros((6, 8), np.uint8)
    pixels[1:4, 2:7] = 255
    (tmp_path / "b.png").write_bytes(_png(pixels, [1] * 6, colour_type=0))
    back, kind = read_mask_with_kind(tmp_path / "b.png")
    assert kind is MaskKind.BINARY
    np.testing.assert_array_equal(back, pixels // 255)


def test_damaged_pixel_data_is_named(tmp_path):
    data = bytearray(_png(np.ones((20, 30), np.uint8), [0] * 20, colour_type=3))
    data[-30] ^= 0xFF  # inside the compressed pixels: zlib's checksum fails, PIL then names the file
    (tmp_path / "d.png").write_bytes(bytes(data))
    with pytest.raises(VcsegError, match=r"d\.png: cannot read mask"):
        read_mask(tmp_path / "d.png")


def test_id_counts_are_each_values_pixels():
    from vcseg.io.masks import id_counts

    ids = np.array([[0, 0, 3], [255, 3, 3]], dtype=np.uint8)
    expected = np.zeros(256, dtype=np.int64)
    expected[[0, 3, 255]] = [2, 3, 1]
    for array in (ids, ids[:, ::2], ids.astype(np.int64), ids.ravel()):
        counts = id_counts(array)
        assert counts.dtype == np.int64
        assert counts.tolist() == np.bincount(np.asarray(array).ravel(), minlength=256).tolist()
    assert id_counts(ids).tolist() == expected.tolist()
