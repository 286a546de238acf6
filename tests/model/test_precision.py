from __future__ import annotations

import warnings

import pytest
import torch

from vcseg.model import precision
from vcseg.model.precision import autocast_dtype


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_uses_bf16_only_on_cpus_that_have_it(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if native else None)
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("fp16", cpu) is torch.float16


def test_explicit_bf16_on_a_cpu_without_it_warns_and_is_honoured(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="without native bf16"):
        assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16


@pytest.mark.parametrize(("gpu", "native"), [("V100", False), ("T4", False), ("A100", True)])
def test_auto_precision_on_a_gpu_is_bf16_only_where_native(monkeypatch, gpu, native):
    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return native or including_emulation  # V100 / T4 emulate bf16: True unless emulation is excluded

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert autocast_dtype("auto", torch.device("cuda", 0)) == (torch.bfloat16 if native else None)
    assert asked == [False]
    assert autocast_dtype("fp16", torch.device("cuda", 0)) is torch.float16
