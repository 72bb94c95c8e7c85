"""Benchmark scripts (not tests) and the code only they and the tests use: paper-scale
architectures and the torchmetrics reference for CLIPScore. Never imported by act2i_utils."""
