"""Inference: turning frames into instance masks with the memory network (and model-free baselines).

- `geometry`: the one resize-and-pad to the network's input and its inverse;
- `objects`: ids that come and go <-> the network's slots; `memory`: the bounded memory bank;
- `engine`: `InferenceEngine`, one model through one video, frame by frame;
- `propagate`: several engines (test-time augmentation, ensembles) averaged, object sources;
  `predict_video` for one video in memory;
- `dataset`: `predict_dataset`, a whole dataset to PNGs (resumable, sharded, logged).
"""
