"""Benchmarks: run as scripts (``python -m benchmarks.<name>``), never as tests."""
