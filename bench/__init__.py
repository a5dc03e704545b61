"""Benchmarks and the baseline servers they compare Squall with."""
