"""The operator benchmarks (issue 9): environment, scenarios and report. Run `bench/run.py`."""
