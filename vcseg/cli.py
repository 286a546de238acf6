"""The `vcseg` command line: declarations only; each command calls one library function.

Errors a user can fix arrive as `VcsegError` and leave as a one-line message with exit 1.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import click
from rich.console import Console

from vcseg import __version__
from vcseg.errors import VcsegError

console = Console(stderr=False, highlight=False)

# A process that has imported torch spends 0.6-0.7 s exiting (2 CPU cores), nearly all of it in the
# interpreter's last garbage collections over torch's hundreds of thousands of objects, which the
# exit would free anyway. Frozen at exit (the first thing it does), they are left out of those
# collections: 0.2 s. Only cycles still alive at exit are affected, and Python never promised to
# finalize those; vcseg's files are closed and renamed before a command returns.
atexit.register(gc.freeze)


class _Group(click.Group):
    """Turns VcsegError, and a file system refusal nothing checked earlier, into click's one-line
    error (exit 1) instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VcsegError as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:
            if error.filename is None:
                raise
            reason = (error.strerror or str(error)).lower()
            raise click.ClickException(f"{error.filename}: {reason}; check the path and its permissions, "
                                       "or choose another") from None


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
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as progress:
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
              help="Where to write the index JSON [default: ./<DATA_ROOT's name>.vcseg_index.json; "
                   "nothing is written into the dataset unless PATH points there].")
@click.option("--val-fraction", type=float, default=0.0, show_default=True,
              help="Fraction of videos put in the validation split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--strict", is_flag=True, help="Exit non-zero on warnings too (and write nothing).")
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
    from vcseg.data.ingest import default_index_path, render_ingest
    from vcseg.data.ingest import ingest as run_ingest
    from vcseg.io.atomic import write_json_atomic
    from vcseg.io.outputs import check_writable_dir, check_writable_file

    index_path = index_path or default_index_path(data_root)
    check_writable_file(index_path, "--index PATH")
    if cache_dir is not None:
        check_writable_dir(cache_dir, "--cache DIR")
    with _progress("checking videos") as advance:
        result = run_ingest(data_root, layout=layout, masks_root=masks_root, resolution=resolution,
                            rgb_masks=rgb_masks, val_fraction=val_fraction, seed=seed,
                            workers=workers, decode_frames=not quick, progress=advance)
    console.print(f"layout: [bold]{result.dataset.layout}[/bold] ({result.dataset.frames_root})")
    render_ingest(result, console)
    if result.errors:
        raise click.ClickException(f"{len(result.errors)} error(s) in {data_root}; fix them and run "
                                   "ingest again (no index written)")
    if strict and result.warnings:
        raise click.ClickException(f"{len(result.warnings)} warning(s) and --strict (no index written)")
    write_json_atomic(index_path, result.index)
    console.print(f"index written to {index_path}")
    if cache_dir is not None:
        from vcseg.data.cache import build_cache

        summary = build_cache(result.dataset, cache_dir, short_side, progress=console.is_terminal)
        console.print(f"frame cache at {cache_dir} (short side {short_side}): {len(summary.built)} "
                      f"video(s) built, {len(summary.reused)} up to date")


# ---- synth --------------------------------------------------------------------------------------

@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--videos", type=int, default=20, show_default=True, help="Number of videos.")
@click.option("--frames", type=int, default=60, show_default=True, help="Frames per video.")
@click.option("--size", default="480x854", show_default=True, help="Frame size HEIGHTxWIDTH.")
@click.option("--people", default="1-4", show_default=True, help="People per video, MIN-MAX.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--frames-only", is_flag=True, help="Write no masks (a test set: no Annotations/ folder).")
@click.option("--preset", type=click.Choice(["default", "crowd"]), default="default", show_default=True,
              help="crowd: 9-12 people in every third video (beyond the 8-instance cap).")
@click.option("--backgrounds", type=_existing_dir, help="Folder of images to use as backgrounds.")
@click.option("--name-prefix", default="synth", show_default=True,
              help="Videos are named PREFIX0000, PREFIX0001, ... (e.g. test for a test set).")
@click.option("--overwrite", is_flag=True,
              help="Replace what a previous synth wrote in OUT (as its synth_meta.json lists); other files stay.")
def synth(out: Path, videos: int, frames: int, size: str, people: str, seed: int, frames_only: bool,
          preset: str, backgrounds: Path | None, name_prefix: str, overwrite: bool) -> None:
    """Generate person videos with instance masks in the competition layout at OUT.

    OUT/JPEGImages/<video>/00000.jpg, OUT/Annotations/<video>/00000.png (pixel = person id; carried
    objects carry their person's id) and OUT/synth_meta.json (what was generated, per frame).
    """
    from vcseg.data.synth import SynthConfig, parse_people, parse_size, synthesize

    height, width = parse_size(size)
    people_min, people_max = parse_people(people)
    config = SynthConfig(videos=videos, frames=frames, height=height, width=width, people_min=people_min,
                         people_max=people_max, seed=seed, frames_only=frames_only, preset=preset,
                         backgrounds=backgrounds, name_prefix=name_prefix)
    with _progress("synthesizing frames") as advance:
        meta = synthesize(out, config, overwrite=overwrite, progress=advance)
    ids = [len(video["people"]) for video in meta["videos"].values()]
    console.print(f"{len(ids)} videos x {frames} frames ({height}x{width}), {min(ids)}-{max(ids)} people "
                  f"per video, written to {out}" + (" (frames only)" if frames_only else ""), soft_wrap=True)

# ---- score --------------------------------------------------------------------------------------

@main.command()
@click.option("--pred", "pred_root", required=True, type=_existing_dir,
              help="Predicted masks: PRED/<video>/<stem>.png.")
@click.option("--gt", "gt_root", required=True, type=_existing_dir,
              help="Ground truth: a dataset root with Annotations/, or GT/<video>/<stem>.png.")
@click.option("--protocol", default="tianchi", show_default=True,
              type=click.Choice(["tianchi", "davis-unsup", "davis-semi"]),
              help="tianchi: Hungarian matching, <= 8 ids; davis-*: the official DAVIS 2017 rules.")
@click.option("--match", default="iou", show_default=True, type=click.Choice(["iou", "jf"]),
              help="tianchi matching score: video mean IoU, or (J_mean + F_mean) / 2.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the scores as JSON here.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one row per ground-truth object here.")
@click.option("--per-frame", is_flag=True, help="Add per-frame J and F lists to the JSON.")
@click.option("--missing-as-empty", is_flag=True,
              help="Score a missing prediction file or folder as an empty mask instead of failing.")
@click.option("--compare", "other_root", type=_existing_dir, default=None, metavar="OTHER_PRED",
              help="Also score OTHER_PRED and print PRED minus OTHER_PRED J&F with a 95% paired "
                   "bootstrap interval over videos (is the difference more than noise?).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes scoring videos in parallel  [default: all cores]")
def score(pred_root: Path, gt_root: Path, protocol: str, match: str, json_path: Path | None,
          csv_path: Path | None, per_frame: bool, missing_as_empty: bool, other_root: Path | None,
          workers: int | None) -> None:
    """Score predicted masks against ground truth: J, F and J&F per video and overall."""
    from rich.progress import Progress

    if per_frame and json_path is None:
        raise click.UsageError("--per-frame adds per-frame lists to the JSON; give --json PATH too")

    from vcseg.io.outputs import check_writable_file

    # checked before scoring, not after: a refused write would otherwise throw the whole run away
    for path, option in ((json_path, "--json"), (csv_path, "--csv")):
        if path is not None:
            check_writable_file(path, option)

    from vcseg.metrics import render_table, score_dataset, write_csv, write_json

    with Progress(console=console, transient=True) as progress:

        def scored(root: Path):
            task = progress.add_task(f"scoring {root}", total=None)

            def advance(video, total: int) -> None:
                progress.update(task, total=total, advance=1)

            return score_dataset(root, gt_root, protocol=protocol, match=match, missing_as_empty=missing_as_empty,
                                 workers=workers, on_video_done=advance)

        report = scored(pred_root)
        other = scored(other_root) if other_root is not None else None
    for warning in report.warnings + (other.warnings if other is not None else []):
        console.print(f"[yellow]warning:[/yellow] {warning}")
    render_table(report, console)
    if json_path is not None:
        write_json(report, json_path, per_frame=per_frame)
        console.print(f"scores written to {json_path}")
    if csv_path is not None:
        write_csv(report, csv_path)
        console.print(f"per-object rows written to {csv_path}")
    if other is not None:
        from vcseg.metrics.compare import paired_difference

        console.print(f"{pred_root} minus {other_root}: {paired_difference(report, other)}")

# ---- compose ------------------------------------------------------------------------------------

@main.command()
@click.argument("sources", nargs=-1, required=True, type=_existing_dir)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the composites (JPEGImages/, Annotations/, compose_meta.json).")
@click.option("--videos", default=6, show_default=True, type=click.IntRange(min=1),
              help="Number of output videos.")
@click.option("--people", default="2-3", show_default=True,
              help="Persons per output video, MIN-MAX, the base video's own included.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same bytes.")
@click.option("--overwrite", is_flag=True, help="Replace what an earlier compose wrote in OUT.")
@click.option("--exclude", multiple=True, metavar="VIDEO",
              help="Leave this source or background video out (repeatable), e.g. to keep a held-out split unseen.")
@click.option("--backgrounds", multiple=True, type=_existing_dir, metavar="DIR",
              help="Videos whose frames are the scenes to paste into (repeatable); their own masks are ignored.")
@click.option("--repeat", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Chance that each pasted person after the first is another copy of one already pasted.")
def compose(sources: tuple[Path, ...], out: Path, videos: int, people: str, seed: int,
            overwrite: bool, exclude: tuple[str, ...], backgrounds: tuple[Path, ...], repeat: float) -> None:
    """Paste persons of annotated videos into each other: multi-person videos with exact masks.

    With --backgrounds, the persons are pasted into those videos' scenes instead (real people in
    real places for the proposal network).
    """
    from vcseg.data.compose import ComposeConfig, compose_dataset, parse_people

    config = ComposeConfig(videos=videos, people=parse_people(people), seed=seed, overwrite=overwrite,
                           exclude=exclude, backgrounds=tuple(str(b) for b in backgrounds), repeat=repeat)
    summary = compose_dataset(list(sources), out, config)
    console.print(f"wrote {len(summary.videos)} videos ({summary.frames} frames, "
                  f"{min(summary.persons)}-{max(summary.persons)} persons each) to {summary.out}")

# ---- pack ---------------------------------------------------------------------------------------

@main.command("pack")
@click.argument("pred_dir", required=False, type=_existing_dir)
@click.option("--frames", "frames_root", required=True, type=_existing_dir,
              help="The test set's frames (ROOT/<video>/*.jpg or ROOT/JPEGImages/<video>/*.jpg).")
@click.option("--out", type=click.Path(path_type=Path), help="The zip to write, e.g. submissions/NAME.zip.")
@click.option("--check", "check_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Validate this existing zip instead of packing.")
@click.option("--fix", is_flag=True,
              help="Store L / 1-bit / 0-255 masks as indexed PNGs in the zip (255 -> id 1; other ids kept).")
def pack_command(pred_dir: Path | None, frames_root: Path, out: Path | None, check_path: Path | None,
                 fix: bool) -> None:
    """Check PRED_DIR/<video>/<frame>.png against the test frames and write the leaderboard zip.

    Nothing is written if any check fails: every problem is listed, one line each. With --check
    ZIP, validate a finished zip the same way.
    """
    from vcseg.pack import SubmissionInvalid, summarize_zip, write_submission

    if check_path is not None:
        if pred_dir is not None or out is not None or fix:
            raise click.UsageError("--check ZIP takes only --frames; drop PRED_DIR, --out and --fix")
    elif pred_dir is None or out is None:
        raise click.UsageError("give PRED_DIR and --out ZIP to pack, or --check ZIP to validate a zip")
    try:
        with _progress("checking zip" if check_path else "packing") as advance:
            if check_path is not None:
                summary = summarize_zip(check_path, frames_root, progress=advance)
            else:
                summary = write_submission(pred_dir, frames_root, out, fix=fix, progress=advance)
    except SubmissionInvalid as invalid:
        for problem in invalid.problems:  # click.echo: one unwrapped line per problem
            click.echo(str(problem))
        raise click.ClickException(str(invalid)) from None
    for warning in summary.warnings:
        click.echo(str(warning))
    verb = "valid submission" if check_path is not None else "written"
    size = (f"{summary.zip_bytes / 1e6:.1f} MB" if summary.zip_bytes >= 1e6
            else f"{summary.zip_bytes / 1e3:.1f} kB")
    console.print(f"[green]{verb}[/green]: {summary.path} ({size})", soft_wrap=True)
    console.print(f"videos: {summary.videos}, frames: {summary.frames}, ids per video: max "
                  f"{summary.max_ids} ({summary.max_ids_video})"
                  + (f", re-encoded by --fix: {summary.fixed}" if summary.fixed else ""), soft_wrap=True)


# ---- train --------------------------------------------------------------------------------------

EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT, as a shell reports it); checkpoint written
EXIT_STOPPED = 3  # stopped by --stop-after before train.steps; checkpoint written


@main.command("train")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML config (configs/*.toml); not needed with --resume.")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory: config.json, log.csv, checkpoints/last.pt.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a config value, e.g. --set train.steps=100 (repeatable).")
@click.option("--task", type=click.Choice(["memory", "proposals"]), default=None,
              help="What to train: the memory network, or the person proposal network [default: the "
                   "config's train.task, memory].")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped.")
@click.option("--stop-after", type=click.IntRange(min=1), default=None,
              help="Stop (with a checkpoint) once this many steps are done, as a time box; --resume goes on. "
                   "Exits 3 when that is before train.steps.")
def train_command(config_path: Path | None, run_dir: Path, overrides: tuple[str, ...], task: str | None,
                  resume: bool, stop_after: int | None) -> None:
    """Train the memory network or the proposal network (the same under torchrun --nproc_per_node=G).

    Ctrl-C writes a checkpoint at the end of the current step and exits 130; --resume continues
    from it, and `--resume --set train.steps=N` extends a run. Exit 0 means the run reached
    train.steps, so `vcseg train ... && vcseg predict ...` never goes on with a half-trained model.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from vcseg.config import load_config
    from vcseg.io.outputs import check_writable_dir
    from vcseg.train.loop import resolve_run_config, train

    if resume and (config_path or task):
        raise click.UsageError("--resume continues with the run's saved config; drop --config and --task "
                               "(--set takes train.steps and the other settings that do not change the run)")
    is_master = int(os.environ.get("RANK", "0")) == 0
    if is_master:
        check_writable_dir(run_dir, "--out")
    resume_overrides = overrides if resume else ()
    overrides = (*overrides, f"train.task={task}") if task else overrides
    config = None if resume else load_config(config_path, list(overrides))
    if not resume and config_path is None:
        raise click.UsageError("a new run needs --config CONFIG.toml (see configs/)")
    config = resolve_run_config(run_dir, config, resume, resume_overrides)
    validate = None
    if config.train.val_every and config.train.task == "memory" and is_master:
        from vcseg.validation import validator_from_config

        validate = validator_from_config(config, config.train.val_videos, config.train.val_frames)
    with Progress(TextColumn("step"), MofNCompleteColumn(), BarColumn(),
                  TextColumn("loss {task.fields[loss]} lr {task.fields[lr]} skip {task.fields[skip]} "
                             "{task.fields[speed]} samples/s"),
                  TimeRemainingColumn(), console=console, disable=not (is_master and console.is_terminal)) as bar:
        bar_task = bar.add_task("train", total=None, loss="-", lr="-", skip="-", speed="-")

        def on_step(result, samples_per_s: float) -> None:
            bar.update(bar_task, completed=result.step, loss=f"{result.loss:.4f}", lr=f"{result.lr:.2e}",
                       skip=result.max_skip, speed=f"{samples_per_s:.1f}")

        bar.update(bar_task, total=config.train.steps)
        summary = train(config, run_dir, resume=resume, resume_overrides=resume_overrides, stop_after=stop_after,
                        on_step=on_step, validate=validate)
    if is_master:
        last = summary.history[-1] if summary.history else None
        state = {"interrupt": "interrupted", "stop_after": "stopped"}.get(summary.stopped_by, "finished")
        why = " (--stop-after)" if summary.stopped_by == "stop_after" else ""
        console.print(f"{state} at step {summary.steps_done} of {summary.total_steps}{why}"
                      + (f", loss {last.loss:.4f}" if last else "") + f"; checkpoint {summary.last_checkpoint}",
                      soft_wrap=True)
        if summary.interrupted:
            console.print(f"the run is not finished; continue with: vcseg train --out {run_dir} --resume",
                          soft_wrap=True)
    if summary.interrupted:  # every rank: torchrun reports the run as not done
        click.get_current_context().exit(EXIT_INTERRUPTED if summary.stopped_by == "interrupt" else EXIT_STOPPED)


# ---- predict ------------------------------------------------------------------------------------

@main.command("predict")
@click.option("--video-dir", "frames_root", required=True, type=_existing_dir,
              help="Frames: ROOT/<video>/*.jpg or ROOT/JPEGImages/<video>/*.jpg.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where the masks go: OUT/<video>/<frame stem>.png (and OUT/.predict_log.json).")
@click.option("--first-masks", "first_masks_root", type=_existing_dir,
              help="Given masks, MASKS/<video>/<stem>.png: an object starts at the first mask holding its id.")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model checkpoint (repeat for an equal-weight ensemble)  [default: weights/default.pt]")
@click.option("--size", type=click.IntRange(min=16), default=480, show_default=True,
              help="Short side of the network input (frames are resized, then padded to 16), never above a "
                   "frame's own unless --upsample. The default weights (trained at 240) do best on real "
                   "footage at 320.")
@click.option("--upsample", is_flag=True,
              help="Let --size enlarge frames whose short side is smaller (off: no pixels made up).")
@click.option("--previous-in-memory/--memory-frames-only", default=True, show_default=True,
              help="Write every frame's value into the memory for the next frame to read (STM), or only the "
                   "memory frames' (STCN: about 1.4x the frames/s of STM on 2 CPU cores, but with the default "
                   "weights 0.13 less J&F on held-out real footage from first masks; see the README).")
@click.option("--mem-every", type=click.IntRange(min=1), default=5, show_default=True,
              help="Every N-th frame joins the working memory.")
@click.option("--mem-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Most frames in the working memory (oldest dropped).")
@click.option("--top-k", type=click.IntRange(min=0), default=None,
              help="Read the memory over the k most similar positions (0: all)  [default: the model's]")
@click.option("--scales", default="1.0", show_default=True,
              help="Test-time scales, e.g. 0.75,1.0,1.25 (probabilities averaged).")
@click.option("--flip", is_flag=True, help="Also run every scale mirrored (probabilities averaged).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
              show_default=True, help="auto: bf16 autocast on CUDA GPUs and CPUs with native bf16, fp32 otherwise.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N.")
@click.option("--cuda-graphs/--no-cuda-graphs", default=True, show_default=True,
              help="On a CUDA device, replay each frame's query encoding from a CUDA graph: the same masks, "
                   "fewer kernel launches (prediction on a GPU waits on them; see the README).")
@click.option("--shard", default=None, metavar="I/N",
              help="Predict the I-th of N shares of the videos  [default: torchrun's RANK/WORLD_SIZE, else all]")
@click.option("--proposals", "proposals", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Checkpoint of the proposal network (no --first-masks)  [default: the first --checkpoint "
                   "holding one]")
@click.option("--key-every", type=click.IntRange(min=1), default=2, show_default=True,
              help="Without --first-masks: look for people every K frames (and on each shot's first).")
@click.option("--proposal-size", type=click.IntRange(min=16), multiple=True, default=(160,), show_default=True,
              help="Without --first-masks: short side of the proposal network's input (the default weights' "
                   "network finds real people best at 160; use your proposal network's training scale). "
                   "Repeat it to look at several sizes, each person kept once (the network runs at each; with the "
                   "default weights 160 and 240 find more people but track fewer well: weights/README.md).")
@click.option("--max-instances", type=click.IntRange(1, 255), default=8, show_default=True,
              help="Without --first-masks: most persons written per video (the competition allows 8).")
@click.option("--correct-iou", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Without --first-masks: a matched proposal replaces its track's mask when they overlap "
                   "by IoU below this (1: at every match) and its score is at least --correct-score. With "
                   "proposals much better than the memory network's masks, give 1 and --correct-score 0 "
                   "(see the README).")
@click.option("--correct-score", type=click.FloatRange(0.0, 1.0), default=0.8, show_default=True,
              help="Without --first-masks: the least proposal score that may replace a track's mask.")
@click.option("--min-score", type=click.FloatRange(0.0, 1.0), default=0.2, show_default=True,
              help="Without --first-masks: the least score of a proposal that starts or confirms a track, and "
                   "of a track's mean score to be written. Higher follows fewer tracks: faster, fewer people "
                   "found (the default weights on the held-out DAVIS people at 480: 0.3 ran about 1.3x as fast, "
                   "J&F 0.552 -> 0.481).")
@click.option("--resume", type=click.Choice(["auto", "never"]), default="auto", show_default=True,
              help="auto: keep a video predicted earlier into OUT only if it was made with the same checkpoints, "
                   "options, frames and first masks and its PNGs are intact (others are redone, saying why); "
                   "never: predict every video again.")
@click.option("--overwrite", is_flag=True,
              help="Replace PNGs in OUT/<video>/ that vcseg predict did not write (e.g. another tool's masks); "
                   "without it they stop the run. Other files are never touched.")
def predict_command(frames_root: Path, out: Path, first_masks_root: Path | None, checkpoints: tuple[Path, ...],
                    size: int, mem_every: int, mem_size: int, top_k: int | None, scales: str, flip: bool,
                    precision: str, device: str, shard: str | None, proposals: Path | None, key_every: int,
                    proposal_size: tuple[int, ...], max_instances: int, correct_iou: float, correct_score: float,
                    min_score: float, resume: str, overwrite: bool, upsample: bool, previous_in_memory: bool,
                    cuda_graphs: bool) -> None:
    """Segment every person of every video: propagate given masks (--first-masks, semi-supervised),
    or find the people with the proposal network on key frames and track them (at most 8 ids).

    OUT is predict's own: one run at a time, files it did not write are left alone, and a rerun
    keeps exactly the videos that would come out the same (--resume).
    """
    from vcseg.infer.output import PredictOutput, check_not_inside_inputs, parse_shard
    from vcseg.io.outputs import check_writable_dir

    # Before the heavy imports, so that a second run on the same OUT is turned away at once.
    check_not_inside_inputs(out, {"--video-dir": frames_root, "--first-masks": first_masks_root})
    check_writable_dir(out, "--out")
    shard_of = parse_shard(shard)
    with PredictOutput(out, shard_of).locked():
        from vcseg.infer.dataset import predict_dataset
        from vcseg.infer.discovery import DiscoveryOptions
        from vcseg.infer.options import PredictOptions, parse_scales
        from vcseg.infer.progress import RichPredictProgress

        options = PredictOptions(size=size, mem_every=mem_every, mem_size=mem_size, top_k=top_k,
                                 scales=parse_scales(scales), flip=flip, precision=precision, device=device,
                                 upsample=upsample, previous_in_memory=previous_in_memory, cuda_graphs=cuda_graphs)
        with RichPredictProgress(console) as progress:
            summary = predict_dataset(frames_root, out, list(checkpoints), first_masks_root, options,
                                      shard=shard_of, progress=progress, proposals=proposals,
                                      discovery=DiscoveryOptions(key_every=key_every, proposal_size=proposal_size[0],
                                                                 extra_proposal_sizes=tuple(proposal_size[1:]),
                                                                 max_instances=max_instances,
                                                                 correct_iou=correct_iou,
                                                                 correct_score=correct_score,
                                                                 min_score=min_score, min_track_score=min_score),
                                      resume=resume, overwrite=overwrite,
                                      notify=lambda message: console.print(message, soft_wrap=True, markup=False))
    index, count = summary.shard
    where = f" (shard {index}/{count})" if count > 1 else ""
    speed = f", {summary.frames / summary.seconds:.1f} frames/s" if summary.frames and summary.seconds else ""
    redone = f" ({len(summary.redone)} of them redone)" if summary.redone else ""
    console.print(f"predicted {len(summary.predicted)} video(s){redone}, {summary.frames} frames{speed}; "
                  f"{len(summary.skipped)} already complete{where}; masks in {summary.out}", soft_wrap=True)
    console.print(f"log: {summary.log_path}", soft_wrap=True)


# ---- export -------------------------------------------------------------------------------------

@main.command("export")
@click.option("--memory", "memory", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Training checkpoint of the memory network (RUN/checkpoints/best.pt or last.pt).")
@click.option("--proposals", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Training checkpoint of the proposal network.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The inference checkpoint to write, e.g. weights/default.pt.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp16", show_default=True,
              help="How weights are stored: fp16 halves the size; int8 (per-channel scales) quarters it.")
def export_command(memory: Path | None, proposals: Path | None, out: Path, precision: str) -> None:
    """Write one inference checkpoint (no training state) holding the memory and/or proposal network."""
    from vcseg.io.outputs import check_writable_file
    from vcseg.train.checkpoint import export_weights

    check_writable_file(out, "--out")  # before reading and converting the checkpoints
    path = export_weights(out, memory=memory, proposals=proposals, precision=precision)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


# ---- demo ---------------------------------------------------------------------------------------

@main.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"),
              show_default=True, help="Where the demo writes its data, predictions, scores and zip.")
@click.option("--workers", type=int, default=None, help="Processes [default: all cores].")
def demo_command(out: Path, workers: int | None) -> None:
    """Run the main job end to end on data vcseg makes itself: synth, ingest, predict, score, pack."""
    from vcseg.demo import run_demo

    run_demo(out, console, workers=workers)


# ---- viz ----------------------------------------------------------------------------------------

@main.command("viz")
@click.argument("pred_root", type=_existing_dir)
@click.option("--frames", "frames_root", required=True, type=_existing_dir,
              help="The dataset the predictions were made from (ROOT/JPEGImages/<video>/ or ROOT/<video>/).")
@click.option("--gt", "gt_root", type=_existing_dir, default=None,
              help="Ground truth (a dataset root, or GT/<video>/<frame>.png): drawn beside the prediction, "
                   "errors coloured.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for <video>.mp4 and <video>.png (nothing else in it is touched).")
@click.option("--videos", "videos", multiple=True, metavar="NAME",
              help="Only these videos (repeatable, or comma-separated) [default: every predicted video].")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=12.0, show_default=True,
              help="Frame rate of the MP4s.")
@click.option("--shrink", type=click.Choice(["auto", "1", "2", "4", "8"]), default="auto", show_default=True,
              help="Draw frames at 1/N of their size (auto: longer side at most 640 px).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes drawing videos in parallel  [default: all cores]")
def viz_command(pred_root: Path, frames_root: Path, gt_root: Path | None, out: Path, videos: tuple[str, ...],
                fps: float, shrink: str, workers: int | None) -> None:
    """Overlay videos (MP4) and contact sheets (PNG) of PRED_ROOT/<video>/<frame>.png; with --gt,
    the ground truth beside them and missed, false and id-switched pixels in their own colours."""
    from vcseg.viz import visualize

    names = [name for value in videos for name in value.split(",") if name]
    with _progress("drawing") as advance:
        summary = visualize(pred_root, frames_root, out, gt_root=gt_root, videos=names or None, fps=fps,
                            shrink=None if shrink == "auto" else int(shrink), workers=workers, progress=advance)
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
    for video in summary.videos:
        line = (f"{video.name}: {video.frames} frames -> {video.video} ({video.size[0]}x{video.size[1]}), "
                f"{video.sheet}")
        if video.matches is not None:
            matched = ", ".join(f"{g}->{p}" for g, p in sorted(video.matches.items())) or "none"
            errors = ", ".join(f"{name} {count}" for name, count in video.error_frames.items())
            line += f"; GT->pred ids {matched}; frames with {errors}"
        console.print(line, soft_wrap=True, markup=False)


# ---- report -------------------------------------------------------------------------------------

@main.command("report")
@click.argument("pred_root", type=_existing_dir)
@click.option("--gt", "gt_root", required=True, type=_existing_dir,
              help="Ground truth: a dataset root with Annotations/, or GT/<video>/<stem>.png.")
@click.option("--frames", "frames_root", required=True, type=_existing_dir,
              help="The frames the prediction was made from (ROOT/<video>/*.jpg or ROOT/JPEGImages/...).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file to write (self-contained: open it from disk).")
@click.option("--compare", "compare_root", type=_existing_dir, default=None, metavar="OTHER_PRED",
              help="A second prediction of the same videos: shown beside, with the paired J&F difference.")
@click.option("--protocol", default="tianchi", show_default=True,
              type=click.Choice(["tianchi", "davis-unsup", "davis-semi"]), help="As in vcseg score.")
@click.option("--worst", type=click.IntRange(min=0), default=3, show_default=True,
              help="Worst frames drawn per video.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes scoring videos in parallel  [default: all cores]")
def report_command(pred_root: Path, gt_root: Path, frames_root: Path, out: Path, compare_root: Path | None,
                   protocol: str, worst: int, workers: int | None) -> None:
    """One HTML page: the scores, a sortable table of videos, J and F over time, the worst frames."""
    from vcseg.viz.report import write_report

    with _progress("drawing the report") as advance:
        summary = write_report(pred_root, gt_root=gt_root, frames_root=frames_root, out=out,
                               compare_root=compare_root, protocol=protocol, worst=worst, workers=workers,
                               progress=advance)
    if summary.difference is not None:
        console.print(f"{pred_root} minus {compare_root}: {summary.difference}", soft_wrap=True)
    console.print(f"report: {summary.path} ({summary.videos} videos, {summary.bytes / 1e6:.1f} MB)", soft_wrap=True)


if __name__ == "__main__":
    main()
