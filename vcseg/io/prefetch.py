"""Reading ahead and writing behind on background threads, so a consumer never waits on files.

    with prefetch(read_frame(path) for path in paths) as frames:    # decoded a few frames ahead
        for frame in frames: ...

    with WriterPool() as writer:                                    # encoded and written behind
        writer.submit(path, write_mask, path, ids)

`prefetch` runs an iterable on a daemon thread that stays at most `depth` items ahead (memory stays
bounded on long videos); an exception the iterable raises comes out of the consumer's `next` at the
position it happened, after every item before it. Closing it (or leaving its `with`, or dropping
it) stops the thread and closes the iterable there. `WriterPool` runs write jobs on a few threads
with a bounded number in flight (back-pressure: `submit` waits while that many are unfinished);
results and errors come back in submission order on the submitting thread, an error naming the file.
Leaving its `with` normally waits for every job; leaving it on an exception cancels the jobs not
started and waits for the running ones, so no thread writes after the block. Both help where the
work releases the GIL (PIL's JPEG decoding and zlib's PNG compression do).
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

from vcseg.errors import VcsegError

T = TypeVar("T")

FRAMES_AHEAD = 4  # frames decoded ahead of the network
WRITER_THREADS = 2
WRITES_IN_FLIGHT = 8  # masks submitted but not yet written, at most

_END = object()


def prefetch(source: Iterable[T], depth: int = FRAMES_AHEAD, name: str = "vcseg-prefetch") -> Prefetch[T]:
    """`source` read ahead on a daemon thread, at most `depth` items; see `Prefetch`."""
    return Prefetch(source, depth, name)


class Prefetch(Generic[T]):
    """Iterate `source` on a daemon thread, at most `depth` items ahead of the consumer.

    The thread starts at the first `next`. Items come out in order; an exception raised by the
    source is raised by the `next` that would have returned the item it stopped at. `close()`
    (also on leaving a `with`, or when the object is collected) stops the thread, closes the
    source in it and waits for it (at most the time the source takes for one item).
    """

    def __init__(self, source: Iterable[T], depth: int = FRAMES_AHEAD, name: str = "vcseg-prefetch") -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._source: Iterable[T] | None = source
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._name = name
        self._thread: threading.Thread | None = None
        self._done = False

    def __iter__(self) -> Prefetch[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        if self._thread is None:
            # the thread gets the source, queue and event, never `self`: dropping this object closes it
            self._thread = threading.Thread(target=_produce, args=(self._source, self._queue, self._stop),
                                            name=self._name, daemon=True)
            self._source = None
            self._thread.start()
        ok, value = self._queue.get()
        if ok and value is not _END:
            return value
        self.close()
        if ok:
            raise StopIteration
        try:
            raise value
        finally:
            value = None  # no reference cycle through the traceback

    def close(self) -> None:
        """Stop reading ahead: the thread closes the source and ends before this returns."""
        self._done = True
        self._source = None
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        while thread.is_alive():
            _drain(self._queue)  # frees a producer blocked on a full queue
            thread.join(0.05)
        _drain(self._queue)  # drop the items read ahead

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _produce(source: Iterable[Any], out: queue.Queue, stop: threading.Event) -> None:
    iterator = None
    try:
        iterator = iter(source)
        for item in iterator:
            if not _put(out, stop, (True, item)):
                return
        _put(out, stop, (True, _END))
    except BaseException as error:  # handed to the consumer, raised there
        _put(out, stop, (False, error))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            try:
                close()  # a generator's cleanup runs in the thread that ran it
            except Exception:
                pass


def _put(out: queue.Queue, stop: threading.Event, entry: tuple[bool, Any]) -> bool:
    """Put `entry` once there is room; False (not put) when the consumer has stopped."""
    while not stop.is_set():
        try:
            out.put(entry, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _drain(items: queue.Queue) -> None:
    while True:
        try:
            items.get_nowait()
        except queue.Empty:
            return


class WriterPool:
    """Write jobs on `workers` threads, at most `max_pending` unfinished; see the module docstring.

    on_result: called with each job's return value, on the submitting thread, in submission order
    (e.g. to count progress); an attribute, which may be changed after `wait()`. A job's exception is raised by a later `submit`, `wait` or the end of
    the `with` block, as a VcsegError naming the job's path unless it already names it.
    """

    def __init__(self, workers: int = WRITER_THREADS, max_pending: int = WRITES_IN_FLIGHT,
                 on_result: Callable[[Any], None] | None = None, name: str = "vcseg-writer") -> None:
        if workers < 1 or max_pending < 1:
            raise ValueError(f"workers and max_pending must be at least 1, got {workers} and {max_pending}")
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._max_pending = max_pending
        self.on_result = on_result
        self._pending: deque[tuple[Path, Future]] = deque()
        self._closed = False

    def submit(self, path: str | os.PathLike[str], job: Callable[..., Any], *args: Any) -> None:
        """Run `job(*args)` (which writes `path`) on a worker; waits while `max_pending` are unfinished."""
        if self._closed:
            raise RuntimeError("WriterPool is closed")
        while self._pending and (len(self._pending) >= self._max_pending or self._pending[0][1].done()):
            self._collect(*self._pending.popleft())
        self._pending.append((Path(path), self._executor.submit(job, *args)))

    def wait(self) -> None:
        """Wait for every job submitted so far; raises the first failure (in submission order)."""
        while self._pending:
            self._collect(*self._pending.popleft())

    def close(self) -> None:
        """Wait for every job, raise the first failure, and stop the threads (in any case)."""
        try:
            self.wait()
        finally:
            self.abort()

    def abort(self) -> None:
        """Cancel the jobs not started, wait for the running ones, stop the threads; raises nothing."""
        self._closed = True
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=True)

    def _collect(self, path: Path, future: Future) -> None:
        try:
            result = future.result()
        except VcsegError as error:
            if str(path) in str(error):
                raise
            raise VcsegError(f"{path}: {error}") from error
        except Exception as error:
            raise VcsegError(f"{path}: cannot write ({type(error).__name__}: {error})") from error
        if self.on_result is not None:
            self.on_result(result)

    def __enter__(self) -> WriterPool:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
