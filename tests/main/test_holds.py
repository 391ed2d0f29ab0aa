"""The in-use finalizer's decisions (main/holds.py): who needs a CloudAccount, the JSON patch
ops, and the keeper's syncs over objects held in memory.

The objects here are plain dicts patched with the same JSON patch ops the apiserver gets;
tests/operator/test_deletion.py runs the keeper against the real apiserver.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import jsonpatch
import pytest

from cloudinfer.main.holds import (
    HoldKeeper,
    Ref,
    annotation_ops,
    finalizer_ops,
    needed_account,
    record_value,
    recorded_refs,
    refs_of,
)
from cloudinfer.main.kube import HeldKind, MetadataConflict

IN_USE = "cloudinfer.dev/in-use"
RECORD = "cloudinfer.dev/in-use-refs"
KOPF = "cloudinfer.dev/finalizer"


def service(
    name: str = "chat", *, on_delete: str = "Stop", account: str = "acct",
    deleting: bool = False, finalizers: tuple[str, ...] = (KOPF,),
) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {"namespace": "ns", "name": name, "finalizers": list(finalizers)}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"accountRef": {"name": account}, "policy": {"onDelete": on_delete}},
    }


@pytest.mark.parametrize(
    ("body", "needed"),
    [
        (service(), ("ns", "acct")),
        (service(deleting=True), ("ns", "acct")),  # not released yet
        (service(deleting=True, finalizers=()), None),  # released
        (service(deleting=True, finalizers=("other.io/x",)), None),  # ours is gone
        (service(on_delete="Retain"), None),
        ({"metadata": {"namespace": "ns"}, "spec": {"policy": {"onDelete": "Stop"}}}, None),
    ],
)
def test_which_account_a_service_needs(body: dict[str, Any], needed: Any) -> None:
    assert needed_account(body) == needed


def test_refs_come_from_the_spec_and_the_record() -> None:
    spec = {"credentialsSecretRef": {"name": "creds"}, "caBundleRef": {"name": "ca", "key": "k"}}
    assert refs_of(spec) == {Ref("Secret", "creds"), Ref("ConfigMap", "ca")}
    assert refs_of({"credentialsSecretRef": {"name": "creds"}}) == {Ref("Secret", "creds")}
    text = record_value(refs_of(spec))
    assert text == '["ConfigMap/ca", "Secret/creds"]'
    assert recorded_refs({"annotations": {RECORD: text}}) == refs_of(spec)
    # A hand-edited record keeps what it can read.
    assert recorded_refs({"annotations": {RECORD: '["Secret/a", "Pod/b", 3]'}}) == {
        Ref("Secret", "a")
    }
    assert recorded_refs({"annotations": {RECORD: "not json"}}) == frozenset()


def apply(meta: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch({"metadata": meta}, ops)["metadata"]
    return result


@pytest.mark.parametrize(
    "before",
    [{}, {"finalizers": [KOPF]}, {"finalizers": [IN_USE]}, {"finalizers": [KOPF, IN_USE, "x"]}],
)
def test_finalizer_ops_touch_only_ours(before: dict[str, Any]) -> None:
    others = [f for f in before.get("finalizers", []) if f != IN_USE]
    added = apply(copy.deepcopy(before), finalizer_ops(before, IN_USE, True))
    assert sorted(added["finalizers"]) == sorted([*others, IN_USE])
    removed = apply(copy.deepcopy(before), finalizer_ops(before, IN_USE, False))
    assert removed.get("finalizers", []) == others
    assert "finalizers" in removed or not others


@pytest.mark.parametrize(
    "before",
    [{}, {"annotations": None}, {"annotations": {"a/b": "1"}}, {"annotations": {RECORD: "x"}}],
)
def test_annotation_ops_set_and_remove_one_key(before: dict[str, Any]) -> None:
    kept = {k: v for k, v in (before.get("annotations") or {}).items() if k != RECORD}
    meta = copy.deepcopy(before)
    if meta.get("annotations") is None:
        meta.pop("annotations", None)  # the apiserver never serves a null map
        before = meta
    set_ = apply(copy.deepcopy(meta), annotation_ops(before, RECORD, "v"))
    assert set_["annotations"] == {**kept, RECORD: "v"}
    removed = apply(copy.deepcopy(set_), annotation_ops(set_, RECORD, None))
    assert removed["annotations"] == kept


class Objects:
    """Secrets, ConfigMaps and CloudAccounts as the keeper's MetadataAccess sees them."""

    def __init__(self) -> None:
        self.meta: dict[tuple[HeldKind, str, str], dict[str, Any]] = {}
        self.version = 0

    def put(self, kind: HeldKind, name: str, **meta: Any) -> dict[str, Any]:
        self.version += 1
        self.meta[(kind, "ns", name)] = {"name": name, "resourceVersion": str(self.version), **meta}
        return self.meta[(kind, "ns", name)]

    def finalizers(self, kind: HeldKind, name: str) -> list[str]:
        return list(self.meta[(kind, "ns", name)].get("finalizers") or [])

    async def read_metadata(
        self, kind: HeldKind, namespace: str, name: str
    ) -> dict[str, Any] | None:
        found = self.meta.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def patch_metadata(
        self, kind: HeldKind, namespace: str, name: str, resource_version: str,
        ops: list[dict[str, Any]],
    ) -> dict[str, Any] | None:  # fmt: skip
        current = self.meta.get((kind, namespace, name))
        if current is None:
            return None
        if current["resourceVersion"] != resource_version:
            raise MetadataConflict("changed")
        new = apply(copy.deepcopy(current), ops)
        self.version += 1
        new["resourceVersion"] = str(self.version)
        self.meta[(kind, namespace, name)] = new
        return copy.deepcopy(new)


def account(objects: Objects, name: str, secret: str, *, ca: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"credentialsSecretRef": {"name": secret}}
    if ca is not None:
        spec["caBundleRef"] = {"name": ca, "key": "ca.crt"}
    return {"metadata": objects.put("CloudAccount", name, namespace="ns"), "spec": spec}


def test_the_keeper_holds_while_needed_and_shares_a_secret_between_accounts() -> None:
    async def scenario() -> None:
        objects = Objects()
        objects.put("Secret", "shared")
        objects.put("ConfigMap", "ca")
        keeper = HoldKeeper(objects)
        keeper.account_seen(("ns", "a"), account(objects, "a", "shared", ca="ca"))
        keeper.account_seen(("ns", "b"), account(objects, "b", "shared"))
        keeper.service_seen(("ns", "s1"), service("s1", account="a"))
        keeper.service_seen(("ns", "s2"), service("s2", account="b"))
        for key in (("ns", "a"), ("ns", "b")):
            await keeper.sync(key)
        assert IN_USE in objects.finalizers("Secret", "shared")
        assert IN_USE in objects.finalizers("ConfigMap", "ca")
        assert IN_USE in objects.finalizers("CloudAccount", "a")

        # a is no longer needed: its ConfigMap goes, the Secret b still needs stays.
        keeper.service_gone(("ns", "s1"))
        keeper.account_seen(("ns", "a"), {"metadata": objects.meta[("CloudAccount", "ns", "a")],
                                         "spec": {"credentialsSecretRef": {"name": "shared"},
                                                  "caBundleRef": {"name": "ca"}}})  # fmt: skip
        await keeper.sync(("ns", "a"))
        assert IN_USE not in objects.finalizers("CloudAccount", "a")
        assert IN_USE not in objects.finalizers("ConfigMap", "ca")
        assert IN_USE in objects.finalizers("Secret", "shared")
        assert RECORD not in (objects.meta[("CloudAccount", "ns", "a")].get("annotations") or {})

        # b's service is being deleted: still needed; once released, everything goes.
        keeper.service_seen(("ns", "s2"), service("s2", account="b", deleting=True))
        assert keeper.needed(("ns", "b")) and keeper.releasing(("ns", "b"))
        keeper.service_seen(("ns", "s2"), service("s2", account="b", deleting=True, finalizers=()))
        assert not keeper.needed(("ns", "b"))
        await keeper.sync(("ns", "b"))
        assert IN_USE not in objects.finalizers("Secret", "shared")
        assert IN_USE not in objects.finalizers("CloudAccount", "b")

    asyncio.run(scenario())


def test_a_deleted_account_with_a_record_left_releases_what_it_held() -> None:
    """Its in-use finalizer was removed by hand: the Secret it recorded is released."""

    async def scenario() -> None:
        objects = Objects()
        objects.put("Secret", "creds", finalizers=[IN_USE])
        keeper = HoldKeeper(objects)
        body = account(objects, "a", "creds")
        body["metadata"]["annotations"] = {RECORD: '["Secret/creds"]'}
        keeper.account_seen(("ns", "a"), body)
        keeper.account_gone(("ns", "a"))
        await keeper.sync(("ns", "a"))
        assert objects.finalizers("Secret", "creds") == []

    asyncio.run(scenario())


def test_nothing_is_written_before_the_indexes_are_complete() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        objects = Objects()
        objects.put("Secret", "creds", finalizers=[IN_USE])
        keeper = HoldKeeper(objects)
        body = account(objects, "a", "creds")
        body["metadata"]["annotations"] = {RECORD: '["Secret/creds"]'}
        body["metadata"]["finalizers"] = [IN_USE]
        objects.meta[("CloudAccount", "ns", "a")].update(copy.deepcopy(body["metadata"]))
        keeper.account_seen(("ns", "a"), body)  # its service is not indexed yet
        await asyncio.sleep(0.05)
        before = objects.finalizers("Secret", "creds")
        keeper.service_seen(("ns", "chat"), service(account="a"))
        keeper.enable()
        await asyncio.sleep(0.05)
        after = objects.finalizers("Secret", "creds")
        await keeper.close()
        return before, after

    before, after = asyncio.run(scenario())
    assert before == [IN_USE], "released while its service was not indexed yet"
    assert after == [IN_USE]


def test_a_keeper_that_does_not_keep_an_account_writes_nothing_until_it_does() -> None:
    """Sharding: only the replica holding the account keeps its holds (others would fight
    over them while their views of the services differ)."""

    async def scenario() -> None:
        objects = Objects()
        objects.put("Secret", "creds")
        mine: set[tuple[str, str]] = set()
        keeper = HoldKeeper(objects, keeps=lambda key: key in mine)
        keeper.account_seen(("ns", "a"), account(objects, "a", "creds"))
        keeper.service_seen(("ns", "s1"), service("s1", account="a"))
        await keeper.sync(("ns", "a"))
        assert objects.finalizers("Secret", "creds") == []
        mine.add(("ns", "a"))
        await keeper.sync(("ns", "a"))
        assert IN_USE in objects.finalizers("Secret", "creds")

    asyncio.run(scenario())
