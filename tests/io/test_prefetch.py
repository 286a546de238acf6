"""Reading ahead and writing behind (vcseg.io.prefetch), and predict's use of them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from vcseg.errors import VcsegError
from vcseg.infer import dataset as dataset_module
from vcseg.infer.discovery import relabel
from vcseg.io.atomic import atomic_path
from vcseg.io.frames import read_frame
from vcseg.io.layouts import VideoFiles
from vcseg.io.masks import read_mask, write_mask
from vcseg.io.prefetch import WriterPool, prefetch


def threads_named(prefix: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def wait_until(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def write_frames(folder, count: int, height: int = 24, width: int = 32) -> VideoFiles:
    rng = np.random.default_rng(0)
    frames = {}
    for t in range(count):
        path = folder / f"{t:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, quality=90)
        frames[f"{t:05d}"] = path
    return VideoFiles(name=folder.name, frames=frames, masks={})


# --- prefetch -------------------------------------------------------------------------------------

def test_frames_come_in_order_equal_to_sequential_reads(tmp_path):
    video = write_frames(tmp_path / "v", 11)
    sequential = list(dataset_module._frames(video))
    with prefetch(dataset_module._frames(video), depth=3, name="test-prefetch-order") as frames:
        ahead = list(frames)
    assert len(ahead) == len(sequential) == 11
    for a, b in zip(ahead, sequential):
        np.testing.assert_array_equal(a, b)
    assert next(iter(frames), None) is None  # stays exhausted
    assert threads_named("test-prefetch-order") == []


def test_an_error_in_frame_k_comes_after_frames_before_it(tmp_path):
    video = write_frames(tmp_path / "v", 6)
    broken = video.frames["00003"]
    broken.write_bytes(b"not a jpeg")
    got = []
    with prefetch(dataset_module._frames(video), name="test-prefetch-error") as frames:
        with pytest.raises(VcsegError, match="cannot decode frame") as raised:
            for frame in frames:
                got.append(frame)
    assert str(broken) in str(raised.value)
    assert len(got) == 3
    for t, frame in enumerate(got):
        np.testing.assert_array_equal(frame, read_frame(video.frames[f"{t:05d}"]))
    assert threads_named("test-prefetch-error") == []


def test_a_frame_of_another_size_is_named_at_its_position(tmp_path):
    video = write_frames(tmp_path / "v", 5)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(video.frames["00002"])
    frames = prefetch(dataset_module._frames(video), name="test-prefetch-size")
    assert next(frames).shape == next(frames).shape == (24, 32, 3)
    with pytest.raises(VcsegError, match="frame is 10x10, the video's first frame 24x32") as raised:
        next(frames)
    assert str(video.frames["00002"]) in str(raised.value)
    assert threads_named("test-prefetch-size") == []
    with pytest.raises(StopIteration):
        next(frames)


def test_reads_at_most_depth_ahead():
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    with prefetch(endless(), depth=4, name="test-prefetch-bound") as items:
        assert next(items) == 0
        assert wait_until(lambda: len(produced) >= 6)
        time.sleep(0.05)
        assert len(produced) == 6  # the one taken, 4 queued, 1 waiting for room
        assert [next(items) for _ in range(3)] == [1, 2, 3]


def test_closing_early_stops_the_thread_and_closes_the_source():
    closed = threading.Event()

    def endless():
        try:
            t = 0
            while True:
                yield t
                t += 1
        finally:
            closed.set()

    items = prefetch(endless(), depth=2, name="test-prefetch-close")
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    assert len(threads_named("test-prefetch-close")) == 1
    items.close()
    assert threads_named("test-prefetch-close") == []
    assert closed.is_set()
    with pytest.raises(StopIteration):
        next(items)


def test_an_exception_in_the_consumer_stops_the_thread(tmp_path):
    video = write_frames(tmp_path / "v", 20)
    with pytest.raises(RuntimeError, match="network failed"):
        with prefetch(dataset_module._frames(video), depth=2, name="test-prefetch-consumer") as frames:
            for t, _ in enumerate(frames):
                if t == 4:
                    raise RuntimeError("network failed")
    assert threads_named("test-prefetch-consumer") == []


def test_a_dropped_prefetch_stops_its_thread():
    def generate():
        yield from range(100)

    items = prefetch(generate(), depth=2, name="test-prefetch-dropped")
    assert next(items) == 0
    del items  # no reference left: collected, closed
    assert wait_until(lambda: not threads_named("test-prefetch-dropped"))


def test_a_never_started_prefetch_has_no_thread():
    with prefetch(iter([1, 2, 3]), name="test-prefetch-idle"):
        assert threads_named("test-prefetch-idle") == []


# --- WriterPool -----------------------------------------------------------------------------------

def random_masks(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 4, (37, 53), dtype=np.uint8) for _ in range(count)]


def test_masks_written_equal_those_written_sequentially(tmp_path):
    masks = random_masks(12)
    for t, ids in enumerate(masks):
        write_mask(tmp_path / "sequential" / f"{t:05d}.png", ids)
    done = []
    with WriterPool(workers=2, max_pending=3, on_result=done.append, name="test-writer-equal") as writer:
        for t, ids in enumerate(masks):
            path = tmp_path / "pool" / f"{t:05d}.png"
            writer.submit(path, lambda path, ids, t: (write_mask(path, ids), t)[1], path, ids, t)
    assert done == list(range(12))  # every result, in submission order
    for t in range(12):
        name = f"{t:05d}.png"
        assert (tmp_path / "pool" / name).read_bytes() == (tmp_path / "sequential" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "pool").iterdir()) == [f"{t:05d}.png" for t in range(12)]
    assert threads_named("test-writer-equal") == []


def test_a_failing_write_is_raised_naming_the_file_and_leaves_no_file(tmp_path):
    def failing_write(path, ids):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"\x89PNG half")
            raise OSError(28, "No space left on device")

    masks = random_masks(4)
    with pytest.raises(VcsegError) as raised:
        with WriterPool(workers=2, name="test-writer-fail") as writer:
            for t, ids in enumerate(masks):
                path = tmp_path / f"{t:05d}.png"
                writer.submit(path, failing_write if t == 2 else write_mask, path, ids)
    assert str(tmp_path / "00002.png") in str(raised.value) and "No space left" in str(raised.value)
    assert isinstance(raised.value.__cause__, OSError)
    assert not (tmp_path / "00002.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    assert threads_named("test-writer-fail") == []


def test_a_bad_mask_is_named(tmp_path):
    with pytest.raises(VcsegError, match="a mask is") as raised:
        with WriterPool(name="test-writer-bad") as writer:
            writer.submit(tmp_path / "bad.png", write_mask, tmp_path / "bad.png", np.zeros((2, 2, 2), np.uint8))
    assert str(tmp_path / "bad.png") in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_submit_waits_while_too_many_writes_are_in_flight(tmp_path):
    release = threading.Event()
    submitted = []

    def slow(t):
        release.wait(5)
        return t

    with WriterPool(workers=1, max_pending=2, name="test-writer-bound") as writer:
        writer.submit("a", slow, 0)
        writer.submit("b", slow, 1)

        def third():
            writer.submit("c", slow, 2)
            submitted.append(2)

        helper = threading.Thread(target=third)
        helper.start()
        time.sleep(0.1)
        assert submitted == []  # two in flight: the third waits
        release.set()
        helper.join(5)
        assert submitted == [2]
    assert threads_named("test-writer-bound") == []


def test_an_exception_in_the_block_waits_for_running_writes(tmp_path):
    started = threading.Event()

    def slow_write(path, ids):
        started.set()
        time.sleep(0.1)
        write_mask(path, ids)

    with pytest.raises(RuntimeError, match="network failed"):
        with WriterPool(workers=1, name="test-writer-abort") as writer:
            writer.submit(tmp_path / "a.png", slow_write, tmp_path / "a.png", random_masks(1)[0])
            writer.submit(tmp_path / "b.png", write_mask, tmp_path / "b.png", random_masks(1)[0])
            assert started.wait(5)
            raise RuntimeError("network failed")
    assert threads_named("test-writer-abort") == []
    assert (tmp_path / "a.png").is_file()  # the running write completed before the block was left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- predict's Discovery pass ----------------------------------------------------------------------

def test_needs_relabel_only_when_an_id_present_changes():
    assert not dataset_module._needs_relabel({1: 1, 2: 2, 3: 0}, [0, 1, 2])  # 3 dropped but never written
    assert dataset_module._needs_relabel({1: 1, 2: 2, 3: 0}, [0, 1, 3])
    assert dataset_module._needs_relabel({1: 2, 2: 1}, [0, 1])
    assert dataset_module._needs_relabel({1: 1}, [0, 1, 4])  # an unmapped id becomes 0
    assert not dataset_module._needs_relabel({}, [0])


def test_skipping_an_identity_relabel_is_byte_identical(tmp_path):
    """What the skipped pass would have written (read, relabel, write) is the file already there."""
    masks = random_masks(3)
    mapping = {1: 1, 2: 2, 3: 3, 7: 0}
    for t, ids in enumerate(masks):
        present = dataset_module._write_mask(tmp_path / f"{t}.png", ids, True)
        assert present.tolist() == sorted(set(np.unique(ids).tolist()))
        assert not dataset_module._needs_relabel(mapping, present)
        before = (tmp_path / f"{t}.png").read_bytes()
        dataset_module._relabel_mask(tmp_path / f"{t}.png", mapping)
        assert (tmp_path / f"{t}.png").read_bytes() == before


def test_relabel_in_the_pool_equals_the_sequential_pass(tmp_path):
    masks = random_masks(6)
    mapping = {1: 3, 2: 0, 3: 1}
    for t, ids in enumerate(masks):
        write_mask(tmp_path / "seq" / f"{t}.png", ids)
        path = tmp_path / "seq" / f"{t}.png"
        write_mask(path, relabel(read_mask(path), mapping))
    with WriterPool(name="test-writer-relabel") as writer:
        for t, ids in enumerate(masks):
            path = tmp_path / "pool" / f"{t}.png"
            writer.submit(path, dataset_module._write_mask, path, ids, True)
        writer.wait()
        for t in range(6):
            path = tmp_path / "pool" / f"{t}.png"
            writer.submit(path, dataset_module._relabel_mask, path, mapping)
    for t in range(6):
        assert (tmp_path / "pool" / f"{t}.png").read_bytes() == (tmp_path / "seq" / f"{t}.png").read_bytes()


# --- predict_dataset through them -----------------------------------------------------------------

class Progress:
    def __init__(self):
        self.frames = 0
        self.done: list[str] = []

    def start(self, videos, frames):
        self.total = frames

    def video_started(self, name, frames):
        pass

    def frame_done(self):
        self.frames += 1

    def video_done(self, name, skipped):
        self.done.append(name)


def test_predict_counts_every_frame_and_leaves_no_thread(tmp_path):
    from tests.conftest import make_video, person_masks
    from tests.infer.conftest import copy_model
    from vcseg.infer.dataset import predict_dataset
    from vcseg.infer.options import PredictOptions

    options = PredictOptions(size=32, device="cpu", precision="fp32")
    for name, frames in (("a", 7), ("b", 3)):
        make_video(tmp_path / "data", name, person_masks(frames))
    progress = Progress()
    predict_dataset(tmp_path / "data", tmp_path / "pred", [copy_model()], tmp_path / "data", options,
                    progress=progress)
    assert progress.frames == progress.total == 10 and progress.done == ["a", "b"]
    for t in range(7):  # the copy model carries the first mask through the video
        np.testing.assert_array_equal(read_mask(tmp_path / "pred" / "a" / f"{t:05d}.png"), person_masks(7)[0])
    assert threads_named("vcseg-prefetch") == threads_named("vcseg-writer") == []

    # a frame of another size: named, raised, and neither reader nor writers left running
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "data" / "JPEGImages" / "b" / "00001.jpg")
    with pytest.raises(VcsegError, match="00001.jpg: frame is 10x10"):
        predict_dataset(tmp_path / "data", tmp_path / "pred2", [copy_model()], tmp_path / "data", options)
    assert threads_named("vcseg-prefetch") == threads_named("vcseg-writer") == []
