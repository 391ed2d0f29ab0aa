"""Reconciliation: desired state, plans, observation and status."""
