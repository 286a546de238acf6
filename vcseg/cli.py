"""The `vcseg` command line: declarations only; each command calls one library function.

Errors a user can fix arrive as `VcsegError` and leave as a one-line message with exit 1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import click
from rich.console import Console

from vcseg import __version__
from vcseg.errors import VcsegError

console = Console(stderr=False, highlight=False)


class _Group(click.Group):
    """Turns VcsegError into click's one-line error instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VcsegError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vcseg")
def main() -> None:
    """vcseg: video person instance segmentation, from the raw dataset to a leaderboard zip."""


_existing_dir = click.Path(exists=True, file_okay=False, path_type=Path)


@contextlib.contextmanager
def _progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar driven by `advance(done, total)` calls from library code."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


# ---- ingest -------------------------------------------------------------------------------------

@main.command()
@click.argument("data_root", type=_existing_dir)
@click.option("--layout", type=click.Choice(["davis", "youtube-vos", "flat", "sibling"]),
              help="Force a layout instead of detecting it.")
@click.option("--masks", "masks_root", type=_existing_dir,
              help="Masks folder beside the frames (MASKS/<video>/*.png): the sibling layout.")
@click.option("--resolution", help="Resolution folder to use under JPEGImages/ (e.g. 480p).")
@click.option("--rgb-masks", is_flag=True, help="Map each colour of RGB masks to an id.")
@click.option("--index", "index_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the index JSON [default: DATA_ROOT/vcseg_index.json].")
@click.option("--val-fraction", type=float, default=0.0, show_default=True,
              help="Fraction of videos put in the validation split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--strict", is_flag=True, help="Exit non-zero on warnings too.")
@click.option("--quick", is_flag=True, help="Read frame headers only instead of decoding every frame.")
@click.option("--workers", type=int, default=None, help="Processes [default: all cores].")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also build a frame cache here (resized uint8 arrays, memory-mapped).")
@click.option("--short-side", type=int, default=480, show_default=True,
              help="Short side of the cached frames.")
def ingest(data_root: Path, layout: str | None, masks_root: Path | None, resolution: str | None,
           rgb_masks: bool, index_path: Path | None, val_fraction: float, seed: int, strict: bool,
           quick: bool, workers: int | None, cache_dir: Path | None, short_side: int) -> None:
    """Validate and index a dataset of JPG frames with instance-id PNG masks.

    Layouts: DATA_ROOT/JPEGImages[/480p]/<video>/*.jpg + DATA_ROOT/Annotations[/480p]/<video>/*.png
    (DAVIS; with meta.json: YouTube-VOS), DATA_ROOT/<video>/*.jpg with the PNGs beside them, or with
    the PNGs under --masks. A frames-only test set is valid input.
    """
    from vcseg.data.ingest import ingest as run_ingest
    from vcseg.data.ingest import render_ingest
    from vcseg.io.atomic import write_json_atomic

    index_path = index_path or data_root / "vcseg_index.json"
    if not os.access(index_path.parent if index_path.parent.exists() else Path.cwd(), os.W_OK):
        raise VcsegError(f"{index_path.parent}: not writable; choose where the index goes with --index PATH")
    with _progress("checking videos") as advance:
        result = run_ingest(data_root, layout=layout, masks_root=masks_root, resolution=resolution,
                            rgb_masks=rgb_masks, val_fraction=val_fraction, seed=seed,
                            workers=workers, decode_frames=not quick, progress=advance)
    console.print(f"layout: [bold]{result.dataset.layout}[/bold] ({result.dataset.frames_root})")
    render_ingest(result, console)
    if result.errors:
        raise click.ClickException(f"{len(result.errors)} error(s) in {data_root}; fix them and run "
                                   "ingest again (no index written)")
    write_json_atomic(index_path, result.index)
    console.print(f"index written to {index_path}")
    if cache_dir is not None:
        from vcseg.data.cache import build_cache

        summary = build_cache(result.dataset, cache_dir, short_side)
        console.print(f"frame cache at {cache_dir}: {summary}")
    if strict and result.warnings:
        raise click.ClickException(f"{len(result.warnings)} warning(s) and --strict")


# ---- synth --------------------------------------------------------------------------------------

# ---- score --------------------------------------------------------------------------------------

# ---- pack ---------------------------------------------------------------------------------------


if __name__ == "__main__":
    main()
