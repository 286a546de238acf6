"""Inference: turning frames into instance masks (baselines today, the memory network later)."""
