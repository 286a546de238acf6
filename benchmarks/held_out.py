"""The held-out split weights/default.pt is reported on, and the weights it is compared with.

Of the six shared DAVIS people sequences, `TRAIN_PEOPLE` may be used for training (and for
development sets); `HELD_OUT` (rollerblade, 35 frames, and tennis, 70) is seen by no training, so
scores on it say how the weights do on real footage they never saw. Two sets are made from it:
the two sequences themselves, first masks given (semi-supervised), and compositions of only those
two for the no-mask path. The previous default weights come from git history, so that one
benchmark run shows them beside the new ones on the same videos.

Not a benchmark itself (no `bench_` prefix): `bench_default_weights`, `bench_discovery` and
`bench_proposals` import it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vcseg.data.compose import ComposeConfig, compose_dataset
from vcseg.infer.discovery import Proposer, mask_iou
from vcseg.io.frames import read_frame
from vcseg.io.layouts import FRAMES_DIR, MASKS_DIR, DatasetFiles, VideoFiles
from vcseg.io.masks import read_mask

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "weights" / "default.pt"
DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-people"
HELD_OUT = ("rollerblade", "tennis")
TRAIN_PEOPLE = ("dance-jump", "hockey", "surf", "swing")
# Excluding the training people (rather than naming the held-out ones) is what compose offers;
# compose refuses an excluded name it does not find, so a renamed sequence cannot slip through.
# With two sources, each base's 2-3 persons are its own and 1-2 pasted from the other sequence
# (the same person twice where 2 are pasted); 8 videos: each sequence the base four times.
HELD_OUT_COMPOSITIONS = ComposeConfig(videos=8, people=(2, 3), seed=0, exclude=TRAIN_PEOPLE)
# The default weights before they were retrained on real video (procedural training only).
PREVIOUS_WEIGHTS_COMMIT = "26f3971"


def held_out_davis(tmp: Path) -> Path:
    """A DAVIS-layout root under `tmp` holding only the `HELD_OUT` sequences (symlinks to the
    shared folders): predict and score read a whole root, and the shared one holds the training
    people too."""
    root = tmp / "davis-held-out"
    for tree in (FRAMES_DIR, MASKS_DIR):
        (root / tree).mkdir(parents=True, exist_ok=True)
        for name in HELD_OUT:
            link = root / tree / name
            if not link.exists():
                link.symlink_to(DAVIS / tree / name, target_is_directory=True)
    return root


def held_out_compositions(out: Path) -> Path:
    """`HELD_OUT_COMPOSITIONS` written to `out` (DAVIS layout): compositions of the held-out
    sequences only, for the no-mask path, which needs several persons per video."""
    compose_dataset([DAVIS], out, HELD_OUT_COMPOSITIONS, progress=False)
    return out


def previous_weights(tmp: Path) -> Path | None:
    """weights/default.pt as of `PREVIOUS_WEIGHTS_COMMIT`, written to `tmp`; None (after one line
    saying why) where git or that commit is not available, e.g. in an exported source tree."""
    try:
        result = subprocess.run(["git", "show", f"{PREVIOUS_WEIGHTS_COMMIT}:weights/default.pt"], cwd=REPO,
                                capture_output=True, check=False)
    except OSError as error:
        print(f"previous weights ({PREVIOUS_WEIGHTS_COMMIT}) not available: cannot run git ({error}); "
              "reporting the new weights only")
        return None
    if result.returncode != 0 or not result.stdout:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        print(f"previous weights ({PREVIOUS_WEIGHTS_COMMIT}) not available: "
              f"{reason[0] if reason else 'git show wrote nothing'}; reporting the new weights only")
        return None
    path = tmp / f"default-{PREVIOUS_WEIGHTS_COMMIT}.pt"
    path.write_bytes(result.stdout)
    return path


def compared_weights(tmp: Path) -> list[tuple[str, Path]]:
    """[("previous", path), ("new", WEIGHTS)], or the new only where the previous are not available
    or are the same file (before the retrained weights land): running them twice would show nothing."""
    previous = previous_weights(tmp)
    if previous is None:
        return [("new", WEIGHTS)]
    if previous.read_bytes() == WEIGHTS.read_bytes():
        print(f"weights/default.pt is still the one of {PREVIOUS_WEIGHTS_COMMIT}: reporting it once, as new")
        return [("new", WEIGHTS)]
    return [("previous", previous), ("new", WEIGHTS)]


def proposal_recall(dataset: DatasetFiles, proposer_for: Callable[[VideoFiles], Proposer], every: int = 5,
                    min_iou: float = 0.5) -> float:
    """Share of (person, frame) pairs of `dataset` (every `every`-th annotated frame) that a
    proposal of `proposer_for(video)` covers with IoU >= `min_iou` (at 0.5 or more a proposal can
    match one of the disjoint persons only)."""
    found = present = 0
    for video in dataset.videos:
        propose = proposer_for(video)
        position = {stem: index for index, stem in enumerate(video.frames)}
        for stem in list(video.masks)[::every]:
            truth = read_mask(video.masks[stem])
            proposals = propose(position[stem], read_frame(video.frames[stem]))
            for person in set(np.unique(truth).tolist()) - {0}:
                present += 1
                found += any(mask_iou(p.mask, truth == person) >= min_iou for p in proposals)
    return found / present if present else float("nan")

