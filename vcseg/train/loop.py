"""`vcseg train`: one visible loop. Data, forward, loss, backward, clip, step, log, checkpoint.

Run directory:

    RUN/config.json            the resolved config (what `--resume` continues with)
    RUN/log.csv                one row per `train.log_every` steps
    RUN/checkpoints/last.pt    model, optimizer, scheduler, scaler, step, RNG states, config
    RUN/checkpoints/best.pt    the checkpoint with the best validation J&F (when validating)
    RUN/val.csv                step, J, F, J&F of each validation (when validating)
    RUN/tensorboard/           event files, when the tensorboard package is installed
    RUN/.vcseg-train.lock      held by the training process (rank 0) while it runs

Exact resume: every training clip is a pure function of (seed, its place in the whole run), the
learning rate a pure function of the step, and the checkpoint holds the optimizer state, so a run
resumed at step s computes the same step s+1 as an uninterrupted run. Under torchrun each process
takes an interleaved share of every global batch; only rank 0 logs and writes.

A resumed run may be given more steps (`resume_overrides=["train.steps=2000"]`) and other
settings in `RESUMABLE_KEYS`, which change how long it goes on or how often it reports, never
what the steps already done meant. From the step it resumes at, the schedules that follow the
run's length (learning rate, frame skip, bootstrapping) follow the new length.
"""

from __future__ import annotations

import csv
import gc
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from vcseg.config import Config, load_config
from vcseg.data.clips import ClipSampler
from vcseg.errors import VcsegError
from vcseg.io.atomic import write_bytes_atomic, write_json_atomic
from vcseg.io.outputs import OutputLock, remove_orphan_temporaries
from vcseg.model import pretrained
from vcseg.model.checkpoint import load_checkpoint, without_encoder_weights
from vcseg.model.precision import autocast_dtype
from vcseg.train.checkpoint import rng_state, save_checkpoint, set_rng_state
from vcseg.model.devices import synchronize
from vcseg.train.distributed import (DistInfo, any_process, gather_to_all, mean_across_processes,
                                     seed_device_generators, setup_distributed, teardown_distributed)
from vcseg.train.schedule import lr_factor
from vcseg.train.tasks import make_task

CONFIG_NAME, LOG_NAME, LAST_NAME, BEST_NAME, VAL_NAME = "config.json", "log.csv", "last.pt", "best.pt", "val.csv"
LOCK_NAME = ".vcseg-train.lock"
# Settings a resumed run may change: its length and how often it checkpoints, logs and validates.
# Clips are a pure function of (seed, position), so the DataLoader's worker count changes nothing
# either. Anything else (model, data, optimiser, schedule shape) would change what the steps already
# done were.
RESUMABLE_KEYS = ("train.steps", "train.checkpoint_every", "train.log_every", "train.val_every", "data.workers",
                  "train.deterministic")
Validate = Callable[[torch.nn.Module], dict[str, float]]  # model -> {"J_mean", "F_mean", "JF_mean"}


@dataclass
class StepResult:
    step: int  # 1-based: the number of optimizer steps done after this one
    loss: float
    parts: dict[str, float]  # the task's loss parts (cross_entropy, dice, ... or foreground, ...)
    lr: float
    max_skip: int

    def __getattr__(self, name: str) -> float:  # result.dice reads like a field
        parts = self.__dict__.get("parts", {})
        if name in parts:
            return parts[name]
        raise AttributeError(name)


@dataclass
class TrainSummary:
    run_dir: Path
    steps_done: int
    interrupted: bool  # stopped before train.steps (Ctrl-C or stop_after); --resume goes on
    last_checkpoint: Path
    history: list[StepResult]
    total_steps: int = 0  # train.steps of the run
    stopped_by: str | None = None  # "interrupt" (Ctrl-C), "stop_after", None when finished


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / LAST_NAME


def resolve_run_config(run_dir: Path, config: Config | None, resume: bool,
                       resume_overrides: Sequence[str] = ()) -> Config:
    """The config a run uses: the given one for a new run, the saved one when resuming (with
    `resume_overrides` of `RESUMABLE_KEYS` applied)."""
    last = checkpoint_path(run_dir)
    if resume:
        if not last.is_file():
            raise VcsegError(f"{last}: nothing to resume; start the run without --resume")
        state = load_checkpoint(last)
        saved = Config.from_dict(state["config"], source=str(last))
        return apply_resume_overrides(saved, resume_overrides, int(state.get("train", {}).get("step", 0)))
    if resume_overrides:
        raise VcsegError("resume_overrides apply to a resumed run only; put them in the config of a new run")
    if last.exists():
        raise VcsegError(f"{run_dir}: already holds a training run; pass --resume to continue it "
                         "or choose another --out")
    if config is None:
        raise VcsegError("a new run needs a config: pass --config CONFIG.toml")
    return config


def apply_resume_overrides(config: Config, overrides: Sequence[str], steps_done: int) -> Config:
    """`config` with `section.key=value` overrides of `RESUMABLE_KEYS`; VcsegError for any other
    key, or for a train.steps the run has already reached."""
    if not overrides:
        return config
    keys = [override.split("=", 1)[0].strip() for override in overrides]
    refused = [key for key in keys if key not in RESUMABLE_KEYS]
    if refused:
        raise VcsegError(f"--set {refused[0]} cannot change a resumed run; with --resume only "
                         f"{', '.join(RESUMABLE_KEYS)} may be set")
    parsed = load_config(None, list(overrides))  # type-checks the values on the defaults
    changes: dict[str, dict[str, Any]] = {}
    for key in keys:
        section, name = key.split(".")
        changes.setdefault(section, {})[name] = getattr(getattr(parsed, section), name)
    extended = replace(config, **{section: replace(getattr(config, section), **values)
                                  for section, values in changes.items()})
    if extended.train.steps <= steps_done:
        raise VcsegError(f"--set train.steps={extended.train.steps}: the run has already done {steps_done} steps; "
                         f"give more than {steps_done} to continue it")
    return extended


class _StopFlag:
    """First Ctrl-C asks the loop to checkpoint and stop at the end of the step; a second one aborts.

    SIGTERM (what torchrun sends its workers when it is interrupted, 30 s before SIGKILL) asks the
    same and never aborts. Under torchrun the ranks agree on the request every step
    (`any_process`), so all stop after the same step and rank 0 saves it."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for signum, handler in ((signal.SIGINT, self._interrupt), (signal.SIGTERM, self._terminate)):
            try:
                self._previous[signum] = signal.signal(signum, handler)
            except ValueError:  # not the main thread (e.g. some test runners): no handler
                pass
        return self

    def _interrupt(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def _terminate(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


@contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """With `enabled` (`train.deterministic`), run with deterministic kernels where PyTorch has them
    (`torch.use_deterministic_algorithms(True, warn_only=True)`: a warning names each op that has
    none), cuDNN autotuning off and cuBLAS given the fixed workspace it needs to be deterministic
    (CUBLAS_WORKSPACE_CONFIG, unless set). Slower on GPUs; on the CPU training is deterministic
    anyway. The previous settings come back on exit."""
    if not enabled:
        yield
        return
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[2], previous[3]


def load_scaler_state(scaler: torch.amp.GradScaler, state: dict[str, Any]) -> None:
    """Restore a GradScaler's state; an empty one (saved by a disabled scaler: an fp16 run on the
    CPU, or any bf16/fp32 run) leaves `scaler` at its initial scale instead of failing."""
    if state and scaler.is_enabled():
        scaler.load_state_dict(state)


def rank_rng_state(train_state: dict[str, Any], rank: int) -> dict[str, Any]:
    """The RNG state rank `rank` resumes from: its own (`rng_ranks`, written under torchrun), else
    rank 0's (`rng`: single-process runs, older checkpoints, or more ranks now than then)."""
    states = train_state.get("rng_ranks")
    if states and rank < len(states):
        return states[rank]
    return train_state["rng"]


def train(config: Config | None, run_dir: str | os.PathLike[str], *, resume: bool = False,
          resume_overrides: Sequence[str] = (), stop_after: int | None = None,
          on_step: Callable[[StepResult, float], None] | None = None,
          validate: Validate | None = None) -> TrainSummary:
    """Train the task's model into `run_dir` (see the module docstring).

    resume_overrides: `section.key=value` changes of `RESUMABLE_KEYS` to a resumed run, e.g.
        "train.steps=2000" to extend a finished one.
    stop_after: stop (with a checkpoint) once this many steps are done, as if interrupted.
    on_step: called on rank 0 after every step with its result and samples per second.
    validate: scores the model every `train.val_every` steps on rank 0 (`vcseg.validation`);
        the best score's checkpoint is kept as best.pt.

    Rank 0 holds `RUN/.vcseg-train.lock` while it trains (a second training into the same run
    fails with `OutputBusy`) and first deletes the temporary files killed saves left in RUN.
    """
    run_dir = Path(run_dir)
    config = resolve_run_config(run_dir, config, resume, resume_overrides)
    settings = config.train
    info = setup_distributed(settings.device)
    try:
        with OutputLock(run_dir / LOCK_NAME, "vcseg train") if info.is_master else nullcontext():
            if info.is_master:
                remove_orphan_temporaries(run_dir)
                remove_orphan_temporaries(run_dir / "checkpoints")
            with deterministic_algorithms(config.train.deterministic):
                return _train(config, run_dir, info, resume, stop_after, on_step, validate)
    finally:
        # DDP's wrapper sits in reference cycles: collected now, while the process group and the
        # interpreter are alive, rather than at exit, where gloo's threads finalising its tensors
        # can abort the process (a likely cause of a rank aborted once in the tests with "terminate
        # called without an active exception" and no Python error; not reproduced since)
        gc.collect()
        teardown_distributed()


def _train(config: Config, run_dir: Path, info: DistInfo, resume: bool, stop_after: int | None,
           on_step: Callable[[StepResult, float], None] | None, validate: Validate | None) -> TrainSummary:
    settings = config.train
    if settings.batch_size % info.world_size:
        raise VcsegError(f"train.batch_size={settings.batch_size} does not split over {info.world_size} "
                         "processes; make it a multiple of the process count")
    local_batch = settings.batch_size // info.world_size
    device = info.device

    section = make_task(config).section  # "model" or "proposals": the network this run trains
    init = load_checkpoint(settings.init) if settings.init and not resume else None
    config = with_input_normalisation(config, section, init)  # what config.json and checkpoints record
    network = getattr(config, section)
    if resume or init is not None:  # the checkpoint's weights replace the encoder's: load (download) none
        network = without_encoder_weights(network)
    task = make_task(replace(config, **{section: network}))
    torch.manual_seed(settings.seed)  # the same initial weights in every process and every run
    model = task.build_model()
    seed_device_generators(settings.seed, info.rank)
    if init is not None:
        model.load_state_dict(_task_state(init, task.name, settings.init))
    model.to(device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameter_groups(model, settings.lr, settings.encoder_lr_scale),
                                  lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, settings.steps, settings.warmup_steps, kind=settings.lr_schedule))
    dtype = autocast_dtype(settings.precision, device)
    autocast = {"device_type": device.type, "dtype": dtype, "enabled": dtype is not None}
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16 and device.type == "cuda")

    start_step, best_score = 0, float("-inf")
    last = checkpoint_path(run_dir)
    if resume:
        state = load_checkpoint(last)
        model.load_state_dict(_task_state(state, task.name, last))
        optimizer.load_state_dict(state["train"]["optimizer"])
        scheduler.load_state_dict(state["train"]["scheduler"])
        # the learning rate from the step, not the one the optimizer saved: they differ when
        # --resume --set train.steps=N gave the schedule a new length (LambdaLR's own formula)
        for group, base_lr, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base_lr * factor(scheduler.last_epoch)
        load_scaler_state(scaler, state["train"]["scaler"])
        set_rng_state(rank_rng_state(state["train"], info.rank), device)
        start_step = int(state["train"]["step"])
        best_score = float(state["train"].get("best_score", float("-inf")))
    if info.is_master:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / CONFIG_NAME, config.to_dict())
        _trim_log(run_dir / LOG_NAME, start_step)
        _trim_log(run_dir / VAL_NAME, start_step)

    network: torch.nn.Module = model
    if info.distributed:
        if device.type == "cuda":  # batch statistics over the whole global batch, as on one GPU
            network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        # The gradients are views into DDP's all-reduce buckets from the start (made with their
        # parameters' strides) and are zeroed in place each step (`set_to_none` would free them):
        # backward adds each kernel's gradient into its view, whatever layout the kernel chose, and
        # DDP copies nothing into its buckets. Fresh gradient tensors drew "grad strides do not match
        # bucket view strides" on an H200 (the channels-last memory network in fp16).
        for parameter in parameters:
            parameter.grad = torch.zeros_like(parameter)
        network = DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None,
                                          gradient_as_bucket_view=True)

    dataset = task.build_dataset()
    sampler = ClipSampler(len(dataset), settings.steps * settings.batch_size,
                          schedule=settings.skip_schedule if task.uses_skip_schedule else None,
                          seed=settings.seed, start_item=start_step * settings.batch_size,
                          rank=info.rank, world_size=info.world_size)
    loader = DataLoader(dataset, batch_size=local_batch, sampler=sampler, num_workers=config.data.workers,
                        pin_memory=device.type == "cuda", drop_last=True)

    def save(step: int, path: Path = last, every_rank: bool = True) -> None:
        """Rank 0 writes; with `every_rank` (a collective: all ranks call it) the checkpoint holds
        every rank's RNG state, each restored by its own rank on resume."""
        states = gather_to_all(rng_state(device), info) if every_rank else [rng_state(device)]
        if info.is_master:
            extra = {"rng_ranks": states} if info.distributed and every_rank else {}
            save_checkpoint(path, config=config.to_dict(), models={task.name: model.state_dict()},
                            train={"step": step, "optimizer": optimizer.state_dict(),
                                   "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                                   "rng": states[0], **extra, "best_score": best_score})

    def run_validation(step: int) -> None:
        nonlocal best_score
        optimizer.zero_grad(set_to_none=True)  # no gradients held while validating
        model.eval()
        scores = validate(model)
        model.train()
        path = run_dir / VAL_NAME
        with open(path, "a", newline="") as handle:
            if handle.tell() == 0:
                handle.write("step,J_mean,F_mean,JF_mean\n")
            handle.write(f"{step},{scores['J_mean']:.6f},{scores['F_mean']:.6f},{scores['JF_mean']:.6f}\n")
        if writer is not None:
            for name, value in scores.items():
                writer.add_scalar(f"val/{name}", value, step)
        if scores["JF_mean"] > best_score:
            best_score = scores["JF_mean"]
            save(step, last.with_name(BEST_NAME), every_rank=False)  # rank 0 alone validates

    columns = ("step", "loss", *task.parts, "lr", "max_skip", "samples_per_s", "data_s", "compute_s")
    writer = _tensorboard(run_dir) if info.is_master else None
    history: list[StepResult] = []
    step, interrupted, stopped_by = start_step, False, None
    network.train()
    with _StopFlag() as stop, (open(run_dir / LOG_NAME, "a", newline="") if info.is_master else nullcontext()) as log:
        log_writer = csv.writer(log) if log is not None else None
        if log_writer is not None and log.tell() == 0:
            log_writer.writerow(columns)
        tick = time.perf_counter()
        for batch in loader:
            data_time = time.perf_counter() - tick
            max_skip = int(batch["info"]["max_skip"].max()) if "max_skip" in batch["info"] else 0
            # the last step's gradients freed before this forward (zeroed where they are DDP's buckets)
            optimizer.zero_grad(set_to_none=not info.distributed)
            loss, parts = task.loss(network, batch, step, device, autocast)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, settings.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]
            with warnings.catch_warnings():
                # fp16: GradScaler skips the optimizer's step on gradients with inf or NaN (the first
                # steps, while it finds its scale); the schedule follows the step count all the same
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
                scheduler.step()
            step += 1
            synchronize(device)  # the step's time includes the GPU's, not only the queueing

            compute_time = time.perf_counter() - tick - data_time
            samples_per_s = settings.batch_size / max(1e-9, data_time + compute_time)
            loss_value = float(mean_across_processes(loss.detach(), info))
            part_values = {name: float(mean_across_processes(torch.as_tensor(parts[name], dtype=torch.float32,
                                                                             device=device), info))
                           for name in task.parts}
            result = StepResult(step, loss_value, part_values, lr=lr, max_skip=max_skip)
            history.append(result)
            if info.is_master:
                if step % settings.log_every == 0 or step == settings.steps:
                    log_writer.writerow([step, f"{loss_value:.6f}", *(f"{part_values[n]:.6f}" for n in task.parts),
                                         f"{lr:.3e}", max_skip, f"{samples_per_s:.2f}", f"{data_time:.4f}",
                                         f"{compute_time:.4f}"])
                    log.flush()
                    if writer is not None:
                        writer.add_scalar("train/loss", loss_value, step)
                        for name, value in part_values.items():
                            writer.add_scalar(f"train/{name}", value, step)
                        writer.add_scalar("train/lr", lr, step)
                        writer.add_scalar("train/max_skip", max_skip, step)
                if on_step is not None:
                    on_step(result, samples_per_s)
            if validate is not None and info.is_master and settings.val_every and \
                    (step % settings.val_every == 0 or step == settings.steps):
                run_validation(step)
            if step % settings.checkpoint_every == 0 or step == settings.steps:
                save(step)
            interrupt = any_process(stop.requested, info)  # every rank stops after the same step
            if interrupt or (stop_after is not None and step >= stop_after):
                interrupted = step < settings.steps
                stopped_by = ("interrupt" if interrupt else "stop_after") if interrupted else None
                save(step)
                break
            tick = time.perf_counter()
    if writer is not None:
        writer.close()
    return TrainSummary(run_dir=run_dir, steps_done=step, interrupted=interrupted, last_checkpoint=last,
                        history=history, total_steps=settings.steps, stopped_by=stopped_by)


ENCODER_MODULES = ("encoder", "value_encoder")  # the networks' backbones (vcseg.model.encoders.build_encoder)


def parameter_groups(model: torch.nn.Module, lr: float, encoder_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """AdamW's parameter groups: one group at `lr`, or, with `encoder_lr_scale` below 1, the
    parameters of the model's encoders (`ENCODER_MODULES`) at lr x encoder_lr_scale and the rest at
    lr. A scale of 0 leaves the encoders' weights as they started (their batch-norm statistics
    still adapt). Frozen parameters (requires_grad False) are left out."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if encoder_lr_scale == 1.0:
        return [{"params": [p for _, p in trainable], "lr": lr}]
    is_encoder = [name.split(".", 1)[0] in ENCODER_MODULES for name, _ in trainable]
    return [{"params": [p for (_, p), encoder in zip(trainable, is_encoder) if not encoder], "lr": lr},
            {"params": [p for (_, p), encoder in zip(trainable, is_encoder) if encoder], "lr": lr * encoder_lr_scale}]


def with_input_normalisation(config: Config, section: str, init: dict[str, Any] | None = None) -> Config:
    """`config` with the input normalisation of the network in `section` ("model" or "proposals")
    filled in: the `init` checkpoint's when the run starts from one and sets none itself (its
    weights were trained with it), else resolved from the encoder and its weights."""
    network = getattr(config, section)
    setting = f"{section}.encoder_weights"
    if not network.input_mean and init is not None:
        started = pretrained.with_input_normalisation(
            getattr(Config.from_dict(init["config"], source=config.train.init), section), setting)
        network = replace(network, input_mean=started.input_mean, input_std=started.input_std)
    return replace(config, **{section: pretrained.with_input_normalisation(network, setting)})


def _task_state(state: dict[str, Any], name: str, path: Any) -> dict[str, torch.Tensor]:
    if name not in state["models"]:
        raise VcsegError(f"{path}: holds no {name} model (it has: {', '.join(state['models'])})")
    return state["models"][name]


def _trim_log(path: Path, keep_through_step: int) -> None:
    """On resume, drop log rows past the checkpoint (an interrupted run may have logged beyond it)."""
    if not path.is_file():
        return
    rows = list(csv.reader(path.read_text().splitlines()))
    if not rows:
        return
    kept = [rows[0]] + [row for row in rows[1:] if row and int(row[0]) <= keep_through_step]
    lines = "".join(",".join(row) + "\n" for row in kept)
    write_bytes_atomic(path, lines.encode())


def _tensorboard(run_dir: Path) -> Any:
    """A SummaryWriter when tensorboard is installed; training never requires it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))
