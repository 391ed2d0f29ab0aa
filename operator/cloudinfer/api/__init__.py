"""The cloudinfer.dev/v1alpha1 API: pydantic models that generate the CRDs."""

from cloudinfer.api.cloudaccount import CloudAccountSpec, CloudAccountStatus
from cloudinfer.api.common import API_VERSION, GROUP, VERSION, Condition
from cloudinfer.api.inferenceservice import InferenceServiceSpec, InferenceServiceStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "CloudAccountSpec",
    "CloudAccountStatus",
    "Condition",
    "InferenceServiceSpec",
    "InferenceServiceStatus",
]
