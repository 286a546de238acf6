"""A rich progress bar for `predict_dataset`: videos done, frames done, frames per second."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


class RichPredictProgress:
    """Two bars (videos, frames with frames/s); a `PredictProgress` to pass to `predict_dataset`.

    with RichPredictProgress(console) as progress:
        predict_dataset(..., progress=progress)
    """

    def __init__(self, console: Console, enabled: bool | None = None) -> None:
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=console, transient=True,
                            disable=not (console.is_terminal if enabled is None else enabled))
        self.videos = self.bar.add_task("videos", total=None, rate="")
        self.frames = self.bar.add_task("frames", total=None, rate="")

    def __enter__(self) -> RichPredictProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.bar.__exit__(kind, error, traceback)

    def start(self, videos: int, frames: int) -> None:
        self.bar.update(self.videos, total=videos, completed=0)
        self.bar.update(self.frames, total=frames, completed=0)

    def video_started(self, name: str, frames: int) -> None:
        self.bar.update(self.videos, description=f"videos ({name})")

    def frame_done(self) -> None:
        self.bar.advance(self.frames)
        speed = self.bar.tasks[self.frames].speed
        self.bar.update(self.frames, rate=f"{speed:.1f} frames/s" if speed else "")

    def video_done(self, name: str, skipped: bool) -> None:
        self.bar.advance(self.videos)
