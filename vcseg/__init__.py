"""vcseg: video person instance segmentation, from raw dataset to leaderboard zip."""

__version__ = "0.1.0"
