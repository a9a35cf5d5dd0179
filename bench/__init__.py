"""Benchmarks: each prints medians and ratios against a named peer measured in the same run."""
