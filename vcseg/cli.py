"""The `vcseg` command line: declarations only; each command calls one library function.

Errors a user can fix arrive as `VcsegError` and leave as a one-line message with exit 1.
"""

from __future__ import annotations

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


# ---- ingest -------------------------------------------------------------------------------------

# ---- synth --------------------------------------------------------------------------------------

# ---- score --------------------------------------------------------------------------------------

# ---- pack ---------------------------------------------------------------------------------------


if __name__ == "__main__":
    main()
