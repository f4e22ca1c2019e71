"""Benchmark suite (``noisevision bench``) and report helpers."""
