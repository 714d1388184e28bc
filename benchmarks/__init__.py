"""Benchmarks of the speed targets (shared/design/targets.md); run with `make bench`, figures in docs/benchmarks.md."""
