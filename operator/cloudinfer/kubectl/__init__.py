"""`kubectl cloudinfer`: the kubectl plugin (docs/cli.md).

It reads InferenceServices and CloudAccounts from the apiserver and the operator's /metrics,
and plans with the operator's own pure planner. Nothing in the operator imports it.
"""
