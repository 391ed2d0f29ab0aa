"""The one table of reasons: every reason the operator writes has a row, docs/reasons.md is
generated from it, and `why` reads the same rows."""

from __future__ import annotations

from pathlib import Path

from cloudinfer.api.conditions import Reason
from cloudinfer.kubectl.reasons import EXPLANATIONS, Kind, explain, markdown
from cloudinfer.kubectl.service import why_report, why_text
from cloudinfer.kubectl.text import Painter

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_reason_has_a_row_with_a_meaning_and_an_action() -> None:
    assert set(EXPLANATIONS) == set(Reason)
    for reason, row in EXPLANATIONS.items():
        assert row.meaning.endswith(".") and row.action.endswith("."), reason
        assert (row.kind is Kind.HEALTHY) == (row.action == "Nothing."), reason


def test_docs_table_is_generated_from_the_same_rows() -> None:
    text = (DOCS / "reasons.md").read_text()
    assert text == markdown(), "docs/reasons.md is stale: python -m cloudinfer.kubectl.reasons"
    for reason in Reason:
        assert f"| `{reason}` |" in text


def test_why_explains_each_unhealthy_reason_once_and_unknown_ones_honestly() -> None:
    obj = {
        "metadata": {"namespace": "ns", "name": "svc"},
        "status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "PermissionDenied", "message": "m"},
            {"type": "Synced", "status": "False", "reason": "PermissionDenied", "message": "m"},
            {"type": "Drifted", "status": "False", "reason": "InSync", "message": "ok"},
            {"type": "Other", "status": "False", "reason": "FromTheFuture", "message": "x"},
        ]},
    }  # fmt: skip
    text = why_text(why_report(obj), Painter(enabled=False))
    permission = explain("PermissionDenied")
    assert permission is not None
    assert text.count(permission.action) == 1
    assert "ns/svc Drifted=False InSync: ok" in text
    assert "not in this plugin's table" in text
    assert explain("FromTheFuture") is None
