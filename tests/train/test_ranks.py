"""Two processes in a gloo process group on the CPU: a stop request seen by one rank stops both
after the same step, rank 0 saves every rank's RNG state, and each rank resumes from its own; the
gradients are DDP's bucket views."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.train.conftest import tiny_config
from vcseg.model.checkpoint import load_checkpoint
from vcseg.train import loop
from vcseg.train.distributed import DistInfo, any_process, gather_to_all

WORLD = 2


def _join(rank: int, tmp: Path, name: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    dist.init_process_group("gloo", init_method=f"file://{tmp / ('pg-' + name)}", rank=rank, world_size=WORLD)


def _agree(rank: int, tmp: Path) -> None:
    _join(rank, tmp, "agree")
    info = DistInfo(rank, rank, WORLD, torch.device("cpu"))
    result = {"any": [any_process(flag, info) for flag in (rank == 1, False, rank == 0)],
              "gathered": gather_to_all({"rank": rank}, info)}
    dist.destroy_process_group()
    (tmp / f"agree{rank}.json").write_text(json.dumps(result))


def test_ranks_agree_on_a_flag_any_of_them_raised(tmp_path):
    torch.set_num_threads(1)
    mp.spawn(_agree, args=(tmp_path,), nprocs=WORLD)
    for rank in range(WORLD):
        result = json.loads((tmp_path / f"agree{rank}.json").read_text())
        assert result == {"any": [True, False, True], "gathered": [{"rank": 0}, {"rank": 1}]}


class _StopOnRankOneAtStep2(loop._StopFlag):
    """Ctrl-C seen by rank 1 alone, during step 2."""
    checks = 0

    @property
    def requested(self) -> bool:
        type(self).checks += 1
        return type(self).checks >= 2

    @requested.setter
    def requested(self, value: bool) -> None:
        pass


def _train(rank: int, tmp: Path, root: Path) -> None:
    torch.set_num_threads(1)
    config = tiny_config(root, "train.steps=4", "train.checkpoint_every=1000", "train.device=cpu",
                         "train.precision=fp32", "train.seed=3")
    losses = {}
    _join(rank, tmp, "straight")
    losses["straight"] = [r.loss for r in loop.train(config, tmp / "straight").history]
    if rank == 1:
        loop._StopFlag = _StopOnRankOneAtStep2
    _join(rank, tmp, "first")
    first = loop.train(config, tmp / "run")
    loop._StopFlag = _StopOnRankOneAtStep2.__mro__[1]
    losses["first"] = [r.loss for r in first.history]
    losses["stopped_by"] = first.stopped_by
    _join(rank, tmp, "resumed")
    losses["resumed"] = [r.loss for r in loop.train(None, tmp / "run", resume=True).history]
    (tmp / f"train{rank}.json").write_text(json.dumps(losses))


def test_a_stop_seen_by_one_rank_stops_all_at_the_same_step_and_resumes_exactly(tiny_videos, tmp_path):
    mp.spawn(_train, args=(tmp_path, tiny_videos), nprocs=WORLD)
    for rank in range(WORLD):
        result = json.loads((tmp_path / f"train{rank}.json").read_text())
        assert result["stopped_by"] == "interrupt" and len(result["first"]) == 2
        assert result["first"] + result["resumed"] == result["straight"]
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["train"]["step"] == 4 and len(state["train"]["rng_ranks"]) == WORLD


def _watch_gradients(rank: int, tmp: Path, root: Path) -> None:
    """Train 2 steps, channels-last, recording the gradients every forward starts from."""
    torch.set_num_threads(1)
    config = tiny_config(root, "train.steps=2", "train.checkpoint_every=1000", "train.device=cpu",
                         "train.precision=fp32", "model.channels_last=true")
    seen = []
    make_task = loop.make_task

    def watched_task(config):
        task = make_task(config)
        loss = task.loss

        def watched_loss(network, *args, **kwargs):
            grads = [(p.grad, p) for p in network.parameters() if p.requires_grad]
            seen.append({"defined": all(g is not None for g, _ in grads),
                         "zero": all(g is not None and not g.any() for g, _ in grads),
                         "param_strides": all(g is not None and g.stride() == p.stride() for g, p in grads),
                         "storages": len({g.untyped_storage().data_ptr() for g, _ in grads if g is not None}),
                         "parameters": len(grads)})
            return loss(network, *args, **kwargs)

        task.loss = watched_loss
        return task

    loop.make_task = watched_task
    _join(rank, tmp, "watch")
    loop.train(config, tmp / "watch")
    (tmp / f"watch{rank}.json").write_text(json.dumps(seen))


def test_ddp_gradients_are_bucket_views_with_the_parameters_strides(tiny_videos, tmp_path):
    """Under DDP every step starts from zeroed gradients that are views into DDP's few buckets, each
    with its parameter's strides (channels-last included): DDP copies no gradient, and no kernel's
    layout can differ from a bucket's."""
    mp.spawn(_watch_gradients, args=(tmp_path, tiny_videos), nprocs=WORLD)
    for rank in range(WORLD):
        steps = json.loads((tmp_path / f"watch{rank}.json").read_text())
        assert len(steps) == 2
        for step in steps:
            assert step["defined"] and step["zero"] and step["param_strides"]
            assert step["storages"] < step["parameters"] // 10  # packed into buckets, not one tensor each
