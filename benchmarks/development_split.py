"""The development split the proposal network's recipe is chosen on, never the held-out one.

    python -m benchmarks.development_split CONFIG [CONFIG ...] [--steps 500] [--sizes 160,240]
        [--not-persons surf] [--work DIR]

One training person (`LEFT_OUT`, dance-jump) stands in for the people nobody trained on:

- training composites: the other training people (minus `--not-persons`) pasted 1-5 at a time
  into the object scenes that show no rider (48 videos, seed 8, as `make weights` composes them);
- test: the left-out person pasted 1-3 times into the eight rider scenes, which no training frame
  shows (12 videos, seed 31).

Each CONFIG (a proposal-network config such as configs/default-proposals.toml) is trained for
`--steps` on those composites (its other data roots, e.g. procedural crowds, kept) and scored by
proposal recall at IoU 0.5 (`held_out.proposal_recall`, every 5th frame) at each short side of
`--sizes`, at the config's own foreground threshold. Composites and runs are kept under `--work`
(default data/development-split), so a second call reuses them: delete a run's folder to train
it again. Slow (about 9 minutes per config and 500 steps on 2 CPU cores, 3 minutes per
composite set), so not part of `make bench`. One split of 249 person-frames moves by about 0.03
from chance alone: only larger differences say anything (weights/README.md, "The proposal
network").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from benchmarks.held_out import DAVIS, HELD_OUT, REPO, TRAIN_PEOPLE, proposal_recall
from vcseg.data.compose import ComposeConfig, compose_dataset
from vcseg.infer.discovery import network_proposer
from vcseg.io.layouts import find_dataset
from vcseg.model.checkpoint import load_proposal_network

OBJECTS = DAVIS.parent / "davis2016-objects"
LEFT_OUT = "dance-jump"
RIDERS = ("bmx-bumps", "horsejump-low", "motocross-bumps", "motorbike", "paragliding", "paragliding-launch",
          "scooter-black", "scooter-gray")  # their annotated object is rider and vehicle together


def object_scenes() -> list[str]:
    """The DAVIS object sequences (the backgrounds), riders included."""
    return sorted(path.name for path in (OBJECTS / "JPEGImages").iterdir() if path.is_dir())


def training_composites(not_persons: tuple[str, ...]) -> ComposeConfig:
    """The development training set: every training person but `LEFT_OUT` and `not_persons`, in
    the scenes without riders (the same settings as `make weights`' proposal composites)."""
    return ComposeConfig(videos=48, people=(1, 5), seed=8, backgrounds=(str(OBJECTS),),
                         exclude=(*HELD_OUT, LEFT_OUT, *not_persons, *RIDERS))


def test_composites() -> ComposeConfig:
    """The development test set: `LEFT_OUT` alone, in the rider scenes alone."""
    other_people = tuple(p for p in TRAIN_PEOPLE if p != LEFT_OUT)
    other_scenes = tuple(s for s in object_scenes() if s not in RIDERS)
    return ComposeConfig(videos=12, people=(1, 3), seed=31, backgrounds=(str(OBJECTS),),
                         exclude=(*HELD_OUT, *other_people, *other_scenes))


def _composed(out: Path, config: ComposeConfig) -> Path:
    if not (out / "compose_meta.json").exists():
        print(f"composing {out} ...", flush=True)
        compose_dataset([DAVIS], out, config, progress=False)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.development_split", description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="+", type=Path, help="proposal-network config files (TOML)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--sizes", default="160,240", help="short sides the recall is measured at")
    parser.add_argument("--not-persons", default="", help="training people left out of the composites, e.g. surf")
    parser.add_argument("--work", type=Path, default=REPO / "data" / "development-split")
    args = parser.parse_args(argv)
    for path in [DAVIS, OBJECTS, *args.configs]:
        if not path.exists():
            print(f"{path}: not found (the shared DAVIS folders sit beside the checkout, as for make weights)",
                  file=sys.stderr)
            return 2
    not_persons = tuple(name for name in args.not_persons.split(",") if name)
    sizes = [int(size) for size in args.sizes.split(",")]
    suffix = "-without-" + "-".join(not_persons) if not_persons else ""
    train_root = _composed(args.work / f"train{suffix}", training_composites(not_persons))
    test = find_dataset(_composed(args.work / "test", test_composites()))
    for config in args.configs:
        run = args.work / "runs" / f"{config.stem}{suffix}-{args.steps}"
        checkpoint = run / "checkpoints" / "last.pt"
        # An earlier run is resumed: vcseg train continues an interrupted one and returns at once
        # from a finished one, so the run folder alone says what is left to do.
        if checkpoint.exists():
            command = ["train", "--out", str(run), "--resume"]
        else:
            command = ["train", "--config", str(config), "--out", str(run),
                       "--set", f"data.root={train_root}", "--set", f"train.steps={args.steps}"]
        print(f"{'continuing' if checkpoint.exists() else 'training'} {config} for {args.steps} steps in {run} ...",
              flush=True)
        subprocess.run([sys.executable, "-m", "vcseg.cli", *command], check=True, stdout=subprocess.DEVNULL)
        model, _ = load_proposal_network(checkpoint)
        for size in sizes:
            recall = proposal_recall(test, lambda video: network_proposer(model, size))
            print(f"{config.name}{' without ' + ', '.join(not_persons) if not_persons else ''}, {args.steps} steps: "
                  f"recall at IoU 0.5, short side {size}, foreground {model.config.foreground_threshold}: "
                  f"{recall:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
