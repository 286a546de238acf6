from __future__ import annotations

import shutil

import numpy as np
from click.testing import CliRunner

from tests.conftest import make_video, person_masks
from vcseg.cli import main
from vcseg.io.masks import read_mask


def make_data(root):
    for name in ("a", "b"):
        make_video(root, name, person_masks(3), layout="frames-only")
        make_video(root / "first", name, person_masks(1))  # first masks in their own DAVIS tree
    return root


def test_predict_writes_one_png_per_frame(tmp_path, checkpoint):
    data = make_data(tmp_path / "data")
    result = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", str(tmp_path / "pred"),
                                       "--first-masks", str(data / "first"), "--checkpoint", str(checkpoint),
                                       "--size", "32", "--scales", "1.0,1.5", "--flip"])
    assert result.exit_code == 0, result.output
    assert "predicted 2 video(s), 6 frames" in result.output
    for name in ("a", "b"):
        assert sorted(p.name for p in (tmp_path / "pred" / name).iterdir()) == ["00000.png", "00001.png", "00002.png"]
        np.testing.assert_array_equal(read_mask(tmp_path / "pred" / name / "00000.png"), person_masks(1)[0])
    again = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", str(tmp_path / "pred"),
                                      "--first-masks", str(data / "first"), "--checkpoint", str(checkpoint),
                                      "--size", "32"])
    # other options make other masks: nothing is kept, and the reason is said
    assert again.exit_code == 0, again.output
    assert "a: predicting again (run.options.scales [1.0, 1.5] -> [1.0]; run.options.flip True -> False)" \
        in again.output
    assert "predicted 2 video(s) (2 of them redone), 6 frames" in again.output
    same = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", str(tmp_path / "pred"),
                                     "--first-masks", str(data / "first"), "--checkpoint", str(checkpoint),
                                     "--size", "32"])
    assert same.exit_code == 0 and "predicted 0 video(s), 0 frames; 2 already complete" in same.output


def test_shard_option(tmp_path, checkpoint):
    data = make_data(tmp_path / "data")
    result = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", str(tmp_path / "pred"),
                                       "--first-masks", str(data / "first"), "--checkpoint", str(checkpoint),
                                       "--size", "32", "--shard", "1/2"])
    assert result.exit_code == 0, result.output
    assert "(shard 1/2)" in result.output
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == [".predict_log.shard-1-of-2.json",
                                                                      ".vcseg-predict", "b"]
    bad = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", str(tmp_path / "pred"),
                                    "--first-masks", str(data / "first"), "--checkpoint", str(checkpoint),
                                    "--shard", "2/2"])
    assert bad.exit_code == 1 and "INDEX must be in 0..COUNT-1" in bad.output


def test_errors(tmp_path, checkpoint, monkeypatch):
    data = make_data(tmp_path / "data")
    out = str(tmp_path / "pred")
    no_masks = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", out,
                                         "--checkpoint", str(checkpoint)])
    assert no_masks.exit_code == 1 and "no mask given and no proposal network" in no_masks.output
    assert "Traceback" not in no_masks.output
    monkeypatch.chdir(tmp_path)  # no weights/default.pt here, nor beside the package
    monkeypatch.setattr("vcseg.infer.models.DEFAULT_WEIGHTS", tmp_path / "weights" / "default.pt")
    no_weights = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", out,
                                           "--first-masks", str(data / "first")])
    assert no_weights.exit_code == 1 and "vcseg train" in no_weights.output
    assert "weights/default.pt" in no_weights.output
    bad_scales = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", out,
                                           "--first-masks", str(data / "first"), "--scales", "1,x"])
    assert bad_scales.exit_code == 1 and "--scales" in bad_scales.output
    # with weights/default.pt in the working directory, no --checkpoint is needed
    (tmp_path / "weights").mkdir()
    shutil.copy(checkpoint, tmp_path / "weights" / "default.pt")
    default = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", out,
                                        "--first-masks", str(data / "first"), "--size", "32"])
    assert default.exit_code == 0, default.output


def test_discovery_option_defaults_are_the_library_defaults():
    # the CLI spells its defaults out (importing torch for --help would be slow): keep them in step
    from vcseg.infer.discovery import DiscoveryOptions

    defaults = {param.name: param.default for param in main.commands["predict"].params}
    library = DiscoveryOptions()
    names = ("key_every", "max_instances", "correct_iou", "correct_score", "min_score")
    assert {name: defaults[name] for name in names} == {name: getattr(library, name) for name in names}
    # --proposal-size, repeatable: its first value is proposal_size, the rest extra_proposal_sizes
    assert defaults["proposal_size"] == (library.proposal_size, *library.extra_proposal_sizes)
    assert library.min_track_score == library.min_score  # --min-score sets both


def test_discovery_options_reach_the_library(tmp_path, monkeypatch):
    from vcseg.infer import dataset as dataset_module

    seen = {}

    def fake_predict(frames_root, out, checkpoints, first_masks_root, options, **kwargs):
        seen.update(kwargs)
        return dataset_module.PredictSummary(out=out)

    monkeypatch.setattr(dataset_module, "predict_dataset", fake_predict)
    data = make_data(tmp_path / "data")
    result = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", str(tmp_path / "pred"),
                                       "--key-every", "3", "--correct-iou", "0.6", "--correct-score", "0.4",
                                       "--min-score", "0.35", "--proposal-size", "192", "--proposal-size", "256"])
    assert result.exit_code == 0, result.output
    discovery = seen["discovery"]
    assert (discovery.proposal_size, discovery.extra_proposal_sizes) == (192, (256,))
    assert (discovery.key_every, discovery.correct_iou, discovery.correct_score) == (3, 0.6, 0.4)
    assert (discovery.min_score, discovery.min_track_score) == (0.35, 0.35)
    out_of_range = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", str(tmp_path / "pred"),
                                             "--correct-iou", "1.5"])
    assert out_of_range.exit_code == 2 and "--correct-iou" in out_of_range.output


def test_cuda_graphs_option_reaches_the_library(tmp_path, monkeypatch):
    from vcseg.infer import dataset as dataset_module
    from vcseg.infer.options import PredictOptions

    seen = []

    def fake_predict(frames_root, out, checkpoints, first_masks_root, options, **kwargs):
        seen.append(options.cuda_graphs)
        return dataset_module.PredictSummary(out=out)

    monkeypatch.setattr(dataset_module, "predict_dataset", fake_predict)
    data = make_data(tmp_path / "data")
    for flag in ([], ["--no-cuda-graphs"]):
        result = CliRunner().invoke(main, ["predict", "--video-dir", str(data), "--out", str(tmp_path / "pred"), *flag])
        assert result.exit_code == 0, result.output
    assert seen == [PredictOptions().cuda_graphs, False] and seen[0] is True
