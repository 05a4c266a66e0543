"""Serving with NVIDIA Triton Inference Server: model repositories, server launchers, load generation."""
