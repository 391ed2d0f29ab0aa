"""cloudinfer-operator: manage TI-ONE, ModelArts and Qianfan inference services from Kubernetes."""

__version__ = "0.1.0"
