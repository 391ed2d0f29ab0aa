"""Huawei Cloud ModelArts."""
