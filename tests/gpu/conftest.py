"""Fixtures of the GPU tests: the training tests' tiny videos, so that these also run on their own
(`make gpu-check` runs tests/gpu without tests/train, whose conftest pytest would not load)."""

from tests.train.conftest import tiny_videos

__all__ = ["tiny_videos"]  # a fixture: pytest finds it by its name in this module
