from __future__ import annotations

import zipfile

import pytest
from rich.console import Console

from vcseg.demo import DemoConfig, run_demo
from vcseg.errors import VcsegError


def test_demo_runs_every_stage(tmp_path):
    config = DemoConfig(videos=2, frames=5, height=64, width=96, people_min=1, people_max=2, seed=1)
    console = Console(record=True, width=120)
    figures = run_demo(tmp_path / "demo", console, config, workers=1, weights=None)
    out = tmp_path / "demo"
    assert 0.0 <= figures["baseline"]["JF_mean"] <= 1.0
    with zipfile.ZipFile(out / "submission.zip") as archive:
        names = archive.namelist()
    assert len(names) == 10 and {n.split("/")[0] for n in names} == {"synth0000", "synth0001"}
    text = console.export_text()
    for step in ("vcseg synth", "vcseg ingest", "baseline", "vcseg pack"):
        assert step in text
    # a second run replaces what the first wrote, and only that
    user_files = {out / "notes.txt": "top", out / "data" / "notes.txt": "in the data",
                  out / "data" / "JPEGImages" / "synth0000" / "notes.txt": "inside a video"}
    for path, text in user_files.items():
        path.write_text(text)
    again = run_demo(out, Console(file=open("/dev/null", "w")), config, workers=1, weights=None)
    assert again["baseline"] == figures["baseline"]
    assert all(path.read_text() == text for path, text in user_files.items())
    assert len(list((out / "pred-baseline").rglob("*.png"))) == 10
    # a file of the user's among the predictions stops the demo before any work, in one line
    mine = out / "pred-baseline" / "synth0000" / "mine.png"
    mine.write_text("keep me")
    with pytest.raises(VcsegError, match="not written by the demo") as refused:
        run_demo(out, Console(file=open("/dev/null", "w")), config, workers=1, weights=None)
    assert str(mine) in str(refused.value) and "\n" not in str(refused.value)
    assert mine.read_text() == "keep me"


def test_demo_into_an_unwritable_folder_is_one_line(unwritable_dir):
    with pytest.raises(VcsegError, match="choose another --out") as refused:
        run_demo(unwritable_dir / "demo", Console(file=open("/dev/null", "w")), DemoConfig(videos=1, frames=2),
                 weights=None)
    assert str(unwritable_dir / "demo") in str(refused.value) and "\n" not in str(refused.value)


def test_demo_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(VcsegError, match="not a previous demo output"):
        run_demo(tmp_path, Console(), DemoConfig(videos=1, frames=2, height=64, width=96), weights=None)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_demo_with_weights_predicts_discovers_and_packs(tmp_path):
    import torch

    from vcseg.config import Config, ModelConfig, ProposalConfig
    from vcseg.model.network import build_model
    from vcseg.model.proposals import build_proposal_model
    from vcseg.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = Config(model=ModelConfig(encoder="resnet18", value_encoder="resnet18", key_dim=16, value_dim=32,
                                      decoder_dim=32),
                    proposals=ProposalConfig(encoder="resnet18", decoder_channels=32, head_channels=16,
                                             centre_threshold=0.0, min_proposal_area=1))
    weights = save_checkpoint(tmp_path / "w.pt", config=config.to_dict(),
                              models={"memory": build_model(config.model).state_dict(),
                                      "proposals": build_proposal_model(config.proposals).state_dict()})
    demo = DemoConfig(videos=1, frames=4, height=64, width=96, people_min=1, people_max=2, seed=2,
                      test_videos=1, predict_size=64)
    figures = run_demo(tmp_path / "demo", Console(file=open("/dev/null", "w")), demo, workers=1, weights=weights)
    assert 0.0 <= figures["memory_network"]["JF_mean"] <= 1.0
    with zipfile.ZipFile(tmp_path / "demo" / "submission.zip") as archive:
        names = archive.namelist()
    assert sorted(names) == [f"test0000/{t:05d}.png" for t in range(4)]  # the frames-only test set
    out = tmp_path / "demo"
    training = {p.name for p in (out / "data" / "JPEGImages").iterdir()}
    assert training == {"synth0000"} and not training & {p.name for p in (out / "test").iterdir() if p.is_dir()}
    assert not (out / "test" / "Annotations").exists()  # predict never sees the test set's masks
    # the no-mask task is scored against the held-back truth, beside its per-frame baseline
    from vcseg.metrics.evaluate import score_dataset

    for name, folder in (("no_mask", "pred-test"), ("no_mask_per_frame", "pred-test-per-frame")):
        expected = score_dataset(out / folder, out / "test-truth", protocol="tianchi", workers=1).summary()
        assert figures[name]["JF_mean"] == expected["JF_mean"]
