"""Simulators of Tencent TI-ONE, Huawei ModelArts and Baidu Qianfan (test infrastructure)."""
