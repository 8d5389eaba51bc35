"""Benchmarks of the Kokeilu platform; see bench/README.md."""
