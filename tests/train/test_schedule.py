from __future__ import annotations

import pytest

from vcseg.train.schedule import lr_factor


def test_warmup_then_cosine():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, final_factor=0.0) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, final_factor=0.0) == pytest.approx(0.5)  # half way: cos(pi/2) = 0
    assert lr_factor(100, 100, 10, final_factor=0.01) == pytest.approx(0.01)


def test_step_and_constant():
    assert lr_factor(50, 100, 0, kind="step") == 1.0
    assert lr_factor(80, 100, 0, kind="step") == pytest.approx(0.1)
    assert lr_factor(99, 100, 0, kind="constant") == 1.0
    with pytest.raises(ValueError):
        lr_factor(0, 10, 0, kind="linear-ish")
