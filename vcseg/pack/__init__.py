"""The leaderboard zip: validate predictions against the test frames and pack them.

`check_predictions`, `write_submission` and `check_zip` (in `vcseg.pack.submission`) share one
validation pass (`vcseg.pack.validate.validate_source`) over a folder or a zip (`vcseg.pack.sources`).
"""

from vcseg.pack.submission import (
    PackSummary,
    SubmissionInvalid,
    check_predictions,
    check_zip,
    summarize_zip,
    write_submission,
)

__all__ = ["PackSummary", "SubmissionInvalid", "check_predictions", "check_zip", "summarize_zip",
           "write_submission"]
