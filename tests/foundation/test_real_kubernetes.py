"""Proof that the test control plane is real Kubernetes: schema validation, RBAC, GC, namespaces."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from support import Cluster, wait_for

GROUP = "foundation.cloudinfer.dev"
WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10}
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def widget_crd(api_client: client.ApiClient) -> Iterator[None]:
    ext = client.ApiextensionsV1Api(api_client)
    name = WIDGET_CRD["metadata"]["name"]  # type: ignore[index]
    ext.create_custom_resource_definition(WIDGET_CRD)

    def established() -> bool:
        crd = ext.read_custom_resource_definition(name)
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    wait_for(established, what="the Widget CRD to be established")
    yield
    ext.delete_custom_resource_definition(name)


def _widget(name: str, size: object) -> dict[str, object]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size},
    }


@pytest.mark.usefixtures("widget_crd")
def test_custom_resource_round_trips_and_unknown_fields_are_pruned(
    api_client: client.ApiClient, namespace: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    body = _widget("ok", 3)
    body["spec"] = {"size": 3, "colour": "blue"}  # not in the schema: the server prunes it
    custom.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", body)
    stored = custom.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "ok")
    assert stored["spec"] == {"size": 3}
    assert stored["metadata"]["uid"]


@pytest.mark.parametrize(
    ("size", "message"),
    [
        pytest.param(0, "should be greater than or equal to 1", id="below-minimum"),
        pytest.param(11, "should be less than or equal to 10", id="above-maximum"),
        pytest.param("three", 'must be of type integer: "string"', id="wrong-type"),
    ],
)
@pytest.mark.usefixtures("widget_crd")
def test_server_enforces_the_crd_schema(
    api_client: client.ApiClient, namespace: str, size: object, message: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            GROUP, "v1", namespace, "widgets", _widget("bad", size)
        )
    assert caught.value.status == 422
    assert message in json.loads(caught.value.body)["message"]


def _service_account_token(cluster: Cluster, namespace: str, name: str) -> str:
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    return cluster.kubectl("create", "token", name, "-n", namespace).stdout.strip()


def test_rbac_denies_a_service_account_until_a_role_is_bound(
    cluster: Cluster, api_client: client.ApiClient, namespace: str
) -> None:
    token = _service_account_token(cluster, namespace, "reader")
    url = f"{api_client.configuration.host}/api/v1/namespaces/{namespace}/configmaps"
    ca = api_client.configuration.ssl_ca_cert
    with httpx.Client(
        verify=ssl.create_default_context(cafile=ca), headers={"Authorization": f"Bearer {token}"}
    ) as http:
        denied = http.get(url)
        assert denied.status_code == 403, denied.text
        assert "system:serviceaccount:" + namespace + ":reader" in denied.json()["message"]

        rbac = client.RbacAuthorizationV1Api(api_client)
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "configmap-reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "configmap-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        )
        wait_for(lambda: http.get(url).status_code == 200, what="the RoleBinding to take effect")
        # The role grants list only: anything else stays forbidden.
        assert http.delete(f"{url}/anything").status_code == 403


def test_deleting_an_owner_garbage_collects_its_dependent(
    core_v1: client.CoreV1Api, namespace: str
) -> None:
    owner = core_v1.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core_v1.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="dependent", owner_references=[reference])
        ),
    )
    core_v1.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    def dependent_gone() -> bool:
        try:
            core_v1.read_namespaced_config_map("dependent", namespace)
        except ApiException as err:
            return err.status == 404
        return False

    wait_for(dependent_gone, timeout=60, what="the garbage collector to delete the dependent")


def test_namespace_deletion_completes(core_v1: client.CoreV1Api) -> None:
    name = "doomed-namespace"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core_v1.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="content"))
    )
    core_v1.delete_namespace(name)

    def namespace_gone() -> bool:
        try:
            core_v1.read_namespace(name)
        except ApiException as err:
            return err.status == 404
        return False

    wait_for(namespace_gone, timeout=90, what="the namespace controller to finish deletion")
