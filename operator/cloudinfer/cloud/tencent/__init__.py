"""Tencent Cloud TI-ONE (API 2021-11-11)."""
