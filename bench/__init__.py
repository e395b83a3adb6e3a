"""Benchmarks: speed targets measured as ratios against a baseline taken in the same run."""
