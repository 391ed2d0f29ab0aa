"""The CRDs come from the models: drift, structural rewrites, and the models accept the examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from cloudinfer.api import CloudAccountSpec, InferenceServiceSpec
from cloudinfer.api.crdgen import (
    SchemaError,
    crd_files,
    generated_files,
    structural_schema,
)

ROOT = Path(__file__).resolve().parents[2]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found += _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _walk(value, f"{path}/{index}")
    return found


@pytest.mark.parametrize("relative", sorted(generated_files()))
def test_committed_file_matches_the_models(relative: str) -> None:
    committed = (ROOT / relative).read_text()
    assert committed == generated_files()[relative], f"{relative} is stale: run `make crds`"


def test_generation_is_deterministic() -> None:
    assert crd_files() == crd_files()


@pytest.mark.parametrize("name", sorted(crd_files()))
def test_generated_schema_is_structural(name: str) -> None:
    crd = yaml.safe_load(crd_files()[name])
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        if path.endswith("/properties") or "x-kubernetes-validations" in path:
            continue
        assert "$ref" not in node, path
        assert "anyOf" not in node, path
        assert "title" not in node, path
        assert node.get("default", "unset") is not None, f"{path}: default: null"
        assert node.get("exclusiveMinimum", True) is True, f"{path}: OpenAPI 3.0 wants a bool"
        assert node.get("additionalProperties", True) is not False, path
    for part in ("spec", "status"):
        for path, node in _walk(schema["properties"][part], part):
            if (
                "/properties/" in path
                and not path.endswith("/properties")
                and "x-kubernetes-validations" not in path
                and not path.endswith("/default")
            ):
                assert node.get("description"), f"{path}: kubectl explain would show nothing"


class _Inner(BaseModel):
    """Inner docs."""

    size: int = Field(gt=0, description="A size.")


class _Outer(BaseModel):
    inner: _Inner | None = Field(default=None, description="Override.")
    items: list[_Inner] = Field(default_factory=list)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param(("properties", "inner", "description"), "Override.", id="ref-sibling-wins"),
        pytest.param(("properties", "inner", "type"), "object", id="nullable-anyof-collapsed"),
        pytest.param(
            ("properties", "inner", "properties", "size", "exclusiveMinimum"),
            True,
            id="exclusive-bound-becomes-openapi3-boolean",
        ),
        pytest.param(("properties", "inner", "properties", "size", "minimum"), 0, id="bound-kept"),
        pytest.param(
            ("properties", "items", "items", "description"),
            "Inner docs.",
            id="ref-in-items-inlined",
        ),
    ],
)
def test_schema_rewrites(path: tuple[str, ...], expected: object) -> None:
    node: Any = structural_schema(_Outer)
    for key in path:
        node = node[key]
    assert node == expected


def test_no_default_null_and_no_title_survive() -> None:
    schema = structural_schema(_Outer)
    assert "default" not in schema["properties"]["inner"]
    assert all("title" not in node for _, node in _walk(schema))


def test_true_unions_are_refused() -> None:
    class Union(BaseModel):
        value: int | str

    with pytest.raises(SchemaError, match="unions"):
        structural_schema(Union)


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_examples_validate_against_the_models(example: Path) -> None:
    models: dict[str, type[BaseModel]] = {
        "InferenceService": InferenceServiceSpec,
        "CloudAccount": CloudAccountSpec,
    }
    docs = _documents(example)
    assert docs
    for doc in docs:
        models[doc["kind"]].model_validate(doc["spec"])
