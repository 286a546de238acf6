"""The names `vcseg predict` keeps for itself in its output folder, defined in one place.

Beside the submission's `PRED/<video>/<stem>.png`, predict keeps bookkeeping that is never part
of a submission: its run logs `PRED/.predict_log.json` (one per shard when sharded:
`PRED/.predict_log.shard-I-of-N.json`) and the folder `PRED/.vcseg-predict/` (records, a lock
file, temporary folders). predict names them with these constants; `vcseg pack` skips them
without a word, while any other hidden file is still reported. They sit in `io/` because pack
comes after infer and may not import from it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

#: predict's state folder at the top of its output folder.
PREDICT_STATE_DIR = ".vcseg-predict"

#: predict's run logs at the top of its output folder: unsharded, or shard I of N.
PREDICT_LOG_PATTERN = re.compile(r"\.predict_log(\.shard-\d+-of-\d+)?\.json")


def predict_log_name(shard: tuple[int, int] = (0, 1)) -> str:
    """The name of the run log of shard `(index, count)`; `(0, 1)` is an unsharded run."""
    index, count = shard
    return ".predict_log.json" if count == 1 else f".predict_log.shard-{index}-of-{count}.json"


def is_predict_bookkeeping(relative_posix_name: str) -> bool:
    """True for a file predict keeps for itself, named relative to its output folder
    (`.predict_log.json`, `.vcseg-predict/lock`); only the top level holds such files."""
    parts = PurePosixPath(relative_posix_name).parts
    if not parts:
        return False
    if parts[0] == PREDICT_STATE_DIR:  # the folder itself or anything in it
        return True
    return len(parts) == 1 and PREDICT_LOG_PATTERN.fullmatch(parts[0]) is not None
