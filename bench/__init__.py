"""Benchmarks: `make bench` prints figures (median of several runs, with the configuration).
Never assertions: targets are compared by reading the figures."""
