"""Baidu AI Cloud Qianfan console API v2."""
