"""Benchmarks: pytest-benchmark suites (``make bench``) and, later, the benchmark runner."""
