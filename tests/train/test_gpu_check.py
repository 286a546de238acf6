from __future__ import annotations

import torch

from benchmarks import gpu_check


def test_gpu_check_without_cuda_says_so_in_one_line_and_succeeds(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no CUDA device" in out


def test_predict_rates_come_from_each_logs_videos_not_its_total(monkeypatch, tmp_path):
    """Two shards' logs, three videos: the rate is their frames over their seconds, each log's
    "total" left out (it once counted as one more video)."""
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
    assert line == "predict sharded over 2 processes: 3 video(s), 12.0 frames/s per process, peak memory 300 MiB"
