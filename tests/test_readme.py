"""The README's examples run as written after `make demo`: every fenced command that uses only
`demo_out/` (and folders git ignores) is run, in order, against a small demo made the same way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from vcseg.demo import DemoConfig, run_demo
from vcseg.infer.models import DEFAULT_WEIGHTS

README = Path(__file__).resolve().parents[1] / "README.md"


def fenced_commands(text: str) -> list[str]:
    """The shell commands of the README's ```bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def demo_commands(text: str) -> list[str]:
    """The commands a reader can run right after `make demo`: they read `demo_out/`, and need no
    other data, GPU or earlier training run."""
    return [c for c in fenced_commands(text)
            if "demo_out/" in c and not re.search(r"\$|\.\./|torchrun|runs/|--config", c)]


def test_the_readme_has_demo_examples():
    commands = demo_commands(README.read_text())
    assert len(commands) >= 6
    assert any(c.startswith("vcseg predict") for c in commands) and any(c.startswith("vcseg pack") for c in commands)


@pytest.mark.slow
def test_readme_commands_run_as_written_after_the_demo(tmp_path):
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("no weights/default.pt in this checkout")
    small = DemoConfig(videos=2, frames=4, height=96, width=128, people_min=1, people_max=2, seed=0, test_videos=1,
                       predict_size=96)
    run_demo(tmp_path / "demo_out", Console(file=open(os.devnull, "w")), small, workers=1)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "NO_ALBUMENTATIONS_UPDATE": "1"}
    for command in demo_commands(README.read_text()):
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
