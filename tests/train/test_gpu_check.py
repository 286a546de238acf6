from __future__ import annotations

import torch

from benchmarks import gpu_check


def test_gpu_check_without_cuda_says_so_in_one_line_and_succeeds(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no CUDA device" in out


def test_predict_rates_come_from_each_logs_videos_not_its_total(monkeypatch, tmp_path):
    """Two shards' logs, three videos: the rates are frames over seconds of the videos' records, each
    log's "total" left out (it once counted as one more video), each process's first video (which
    pays for the warm-up) apart from the rest: (30 + 20) / (2 + 2) and 10 / 1."""
    import json
    import subprocess

    monkeypatch.setattr(gpu_check, "_run", lambda args: subprocess.CompletedProcess(args, 0, "", ""))
    logs = {".predict_log.shard-1-of-2.json": {"a": (30, 2.0, 100), "b": (10, 1.0, 300)},
            ".predict_log.shard-2-of-2.json": {"c": (20, 2.0, 200)}}
    for name, videos in logs.items():
        records = {video: {"frames": f, "seconds": s, "peak_memory_bytes": m << 20} for video, (f, s, m) in videos.items()}
        total = {"videos": len(videos), "frames": sum(f for f, _, _ in videos.values()), "seconds": 9.0}
        (tmp_path / name).write_text(json.dumps({"videos": records, "total": total}))
    ok, line = gpu_check.predict(tmp_path, tmp_path / "last.pt", tmp_path, "cpu", sharded=True)
    assert ok
    assert line == ("predict sharded over 2 processes: 3 video(s), 12.5 frames/s per process on each one's first "
                    "video, 10.0 on the others, peak memory 300 MiB")


def test_predict_rate_of_one_video_per_process_says_it_holds_the_warm_up(monkeypatch, tmp_path):
    import json
    import subprocess

    monkeypatch.setattr(gpu_check, "_run", lambda args: subprocess.CompletedProcess(args, 0, "", ""))
    records = {"a": {"frames": 60, "seconds": 4.0, "peak_memory_bytes": 577 << 20}}
    (tmp_path / ".predict_log.json").write_text(json.dumps({"videos": records, "total": {}}))
    ok, line = gpu_check.predict(tmp_path, tmp_path / "last.pt", tmp_path, "cuda", sharded=False)
    assert ok
    assert line == ("predict one process: 1 video(s), 15.0 frames/s (one video per process: warm-up included), "
                    "peak memory 577 MiB")
