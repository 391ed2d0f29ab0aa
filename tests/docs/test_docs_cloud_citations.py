"""Every citation of docs/clouds/ points at a page and a heading that exist.

Code comments cite the cloud pages as `docs/clouds/<page>.md#<anchor>`; a renamed heading
would leave them pointing nowhere, and nothing else would notice. Anchors are computed the
way GitHub renders them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLOUD_DOCS = ROOT / "docs" / "clouds"
CLOUD_PAGES = ("tencent-tione.md", "huawei-modelarts.md", "baidu-qianfan.md")
PAGE_SECTIONS = (
    "sources",
    "endpoint",
    "signing",
    "reading-services",
    "field-map",
    "writing-changes",
    "errors",
    "rate-limits",
    "asynchronous-behaviour",
    "seeds-and-sdks-disagree",
    "simulator-and-known-differences",
)
"""The sections every cloud page has, so that a citation's anchor means the same on each."""

SCANNED_DIRS = ("operator", "tests", "bench", "docs")
SCANNED_SUFFIXES = frozenset({".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".sh"})
CITATION = re.compile(r"docs/clouds/([\w.-]+\.md)(?:#([\w-]+))?")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
# The shared reference the project started from is not in the repository; built from parts
# so that this file does not cite it itself.
RETIRED_REFERENCES = re.compile(r"\b(?:clouds|sdk-endpoints)" + re.escape(".md"))


def _scanned_files() -> Iterator[Path]:
    for top in SCANNED_DIRS:
        for path in sorted((ROOT / top).rglob("*")):
            if "__pycache__" in path.parts or path.suffix not in SCANNED_SUFFIXES:
                continue
            if path.is_file():
                yield path
    yield ROOT / "README.md"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: link text kept, punctuation dropped, spaces to `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """Every heading anchor of a Markdown page, with GitHub's `-1`, `-2` for repeats."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        match = re.match(r"#{1,6}\s+(.*)", line)
        if in_fence or match is None:
            continue
        anchor = github_anchor(match.group(1))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return frozenset(found)


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_anchor_rule_matches_github() -> None:
    assert github_anchor("Rate limits") == "rate-limits"
    assert github_anchor("Tencent TI-ONE (`POST /`, `X-TC-Action`, version `2021-11-11`)") == (
        "tencent-ti-one-post--x-tc-action-version-2021-11-11"
    )
    assert github_anchor("Huawei ModelArts v1 (`/v1/{project_id}/services...`)") == (
        "huawei-modelarts-v1-v1project_idservices"
    )
    assert github_anchor("See [the API](api.md) first") == "see-the-api-first"


@pytest.mark.parametrize("page", CLOUD_PAGES)
def test_every_cloud_page_has_the_common_sections(page: str) -> None:
    missing = [s for s in PAGE_SECTIONS if s not in anchors(CLOUD_DOCS / page)]
    assert not missing, f"docs/clouds/{page} lacks the sections {missing}"


def test_every_cited_cloud_page_and_anchor_exists() -> None:
    citations = 0
    broken: list[str] = []
    for path in _scanned_files():
        text = path.read_text(encoding="utf-8")
        for match in CITATION.finditer(text):
            citations += 1
            page, anchor = CLOUD_DOCS / match.group(1), match.group(2)
            line = text.count("\n", 0, match.start()) + 1
            where = f"{_relative(path)}:{line} cites {match.group(0)}"
            if not page.is_file():
                broken.append(f"{where}: no such page")
            elif anchor is not None and anchor not in anchors(page):
                broken.append(f"{where}: no such heading in {page.name}")
    assert not broken, "\n".join(broken)
    # The code cites the pages dozens of times; a pattern that matched nothing would pass
    # vacuously.
    assert citations > 40


def test_links_in_and_into_the_cloud_pages_resolve() -> None:
    broken: list[str] = []
    pages = [p for p in _scanned_files() if p.suffix == ".md"]
    for page in pages:
        inside = page.parent == CLOUD_DOCS
        for match in MARKDOWN_LINK.finditer(page.read_text(encoding="utf-8")):
            target = match.group(1)
            if "://" in target or target.startswith("mailto:"):
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (page.parent / file_part).resolve() if file_part else page
            if not inside and CLOUD_DOCS not in (resolved, *resolved.parents):
                continue
            if resolved.is_dir():
                resolved = resolved / "README.md"
            where = f"{_relative(page)} links to {target}"
            if not resolved.is_file():
                broken.append(f"{where}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{where}: no such heading")
    assert not broken, "\n".join(broken)


def test_nothing_cites_the_reference_outside_the_repository() -> None:
    offenders = [
        f"{_relative(path)}:{number}: {line.strip()}"
        for path in _scanned_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if RETIRED_REFERENCES.search(line)
    ]
    assert not offenders, "cite docs/clouds/<page>.md#<section> instead:\n" + "\n".join(offenders)
