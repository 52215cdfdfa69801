"""Fused in-place optimizers with PyTorch's update rules (see API.md)."""
