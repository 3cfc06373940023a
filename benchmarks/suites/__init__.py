"""The speed and memory suites (pytest-benchmark, ``make bench``) and the probes they run; kept out
of the wheel and apart from the runner."""
