"""Checkpoints and models: finding, detecting and loading checkpoints, the model families and their configs, the
model manager with its cache, optimizations, safe weight reading, downloads and the Checkpoint Merger."""
