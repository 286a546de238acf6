"""Prediction never imports the training stack (losses, clips, augmentations, the loop): start-up
time is time to the first predicted frame."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_video, person_masks

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter: the modules of vcseg.train loaded after importing the prediction module,
# then after a whole `vcseg predict` run (CLI, predict_dataset, checkpoint loading, propagation).
PROBE = """
import json, sys
def training():
    return sorted(name for name in sys.modules if name == "vcseg.train" or name.startswith("vcseg.train."))
import vcseg.infer.dataset
after_import = training()
from click.testing import CliRunner
from vcseg.cli import main
result = CliRunner().invoke(main, ["predict", *sys.argv[1:]])
print(json.dumps({"import": after_import, "predict": training(), "exit_code": result.exit_code,
                  "output": result.output}))
"""


def test_prediction_does_not_import_training(tmp_path, checkpoint):
    make_video(tmp_path / "data", "a", person_masks(2), layout="frames-only")
    make_video(tmp_path / "first", "a", person_masks(1))
    args = ["--video-dir", str(tmp_path / "data"), "--out", str(tmp_path / "pred"), "--first-masks",
            str(tmp_path / "first"), "--checkpoint", str(checkpoint), "--size", "32", "--device", "cpu"]
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["exit_code"] == 0 and "predicted 1 video(s), 2 frames" in seen["output"], seen["output"]
    assert seen["import"] == [] and seen["predict"] == []


# The default weights' EfficientNet-Lite encoders and DeepLabV3+ decoder are vcseg's own modules
# (vcseg.model.lite, vcseg.model.deeplab): predicting with them, from first masks or with none,
# imports neither segmentation-models-pytorch nor timm nor torchvision (2 s of start-up).
THIRD_PARTY_PROBE = """
import json, sys
from click.testing import CliRunner
from vcseg.cli import main
result = CliRunner().invoke(main, ["predict", *sys.argv[1:]])
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("segmentation_models_pytorch", "timm", "torchvision"))
print(json.dumps({"heavy": heavy[:5], "exit_code": result.exit_code, "output": result.output}))
"""


def test_prediction_with_the_default_weights_imports_no_smp_timm_or_torchvision(tmp_path):
    weights = ROOT / "weights" / "default.pt"
    make_video(tmp_path / "data", "a", person_masks(2, height=64, width=96), layout="frames-only")
    make_video(tmp_path / "first", "a", person_masks(1, height=64, width=96))
    for mode, extra in (("first masks", ["--first-masks", str(tmp_path / "first")]), ("no mask", [])):
        args = ["--video-dir", str(tmp_path / "data"), "--out", str(tmp_path / mode), "--checkpoint", str(weights),
                "--size", "64", "--device", "cpu", *extra]
        done = subprocess.run([sys.executable, "-c", THIRD_PARTY_PROBE, *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert seen["exit_code"] == 0 and "predicted 1 video(s), 2 frames" in seen["output"], (mode, seen["output"])
        assert seen["heavy"] == [], mode


# The exit of a process that imported torch: atexit handlers run first, then the interpreter's last
# garbage collections, which vcseg's commands keep off everything alive by freezing it.
EXIT_PROBE = """
import atexit, gc, sys
import vcseg.cli
before = gc.get_freeze_count()
atexit._run_exitfuncs()
print(before, gc.get_freeze_count())
"""


def test_a_vcseg_command_freezes_its_objects_at_exit():
    done = subprocess.run([sys.executable, "-c", EXIT_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert before == 0 and after > 1000  # every object alive, modules and all
