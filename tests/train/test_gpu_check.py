from __future__ import annotations

import torch

from benchmarks import gpu_check


def test_gpu_check_without_cuda_says_so_in_one_line_and_succeeds(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no CUDA device" in out
