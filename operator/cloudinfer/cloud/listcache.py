"""Reusing what a list item parsed into while the item stays the same (issue 19).

In steady state nearly every item of an account's list is what it was on the last list; at
N = 10,000 parsing and validating each again cost more than decoding the pages. An item is
known by a digest of its JSON: an unchanged item gives back the object parsed last time, a
changed one is parsed again, and an item gone from the list is forgotten with that list.
Only the digests and the parsed objects are kept, never the decoded items (~12 KB each).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import orjson

T = TypeVar("T")

DIGEST_BYTES = 16
"""128 bits: two different items of one account never share a digest in practice."""


def item_digest(item: Mapping[str, Any]) -> bytes | None:
    """The digest of a decoded item, or None if it has no exact encoding (an integer beyond
    64 bits, a NaN from a lenient decode: see `exchange.json_object`); such an item is parsed
    every time."""
    try:
        encoded = orjson.dumps(item)
    except TypeError:  # orjson.JSONEncodeError is one
        return None
    # SHA-256 (hardware-accelerated here) is faster than BLAKE2 at this size.
    return hashlib.sha256(encoded).digest()[:DIGEST_BYTES]


class Listing(Generic[T]):
    """One list of one account, item by item. `done()` once the list is complete makes it
    the one the next list reuses; a list that fails midway is simply dropped."""

    def __init__(
        self, owner: ParsedItems[T], account: str, context: object, reuse: dict[bytes, T]
    ) -> None:
        self._owner = owner
        self._account = account
        self._context = context
        self._reuse = reuse
        self._seen: dict[bytes, T] = {}

    def parse(self, item: Mapping[str, Any], parse: Callable[[], T]) -> T:
        """What `parse()` makes of `item`, from the last list when the item is unchanged.
        `parse` must depend on nothing but the item and the listing's context."""
        return self.parse_keyed(item, parse)[1]

    def parse_keyed(
        self, item: Mapping[str, Any], parse: Callable[[], T]
    ) -> tuple[bytes | None, T]:
        """`parse`, and the item's digest (for `carry`)."""
        digest = item_digest(item)
        if digest is None:
            return None, parse()
        parsed = self._reuse.get(digest)
        if parsed is None:
            parsed = parse()
        self._seen[digest] = parsed
        return digest, parsed

    def carry(self, keyed: Iterable[tuple[bytes | None, T]]) -> None:
        """Items of this list known from the last one without reading them (a page whose
        body is unchanged): they stay known for the next."""
        self._seen.update((digest, parsed) for digest, parsed in keyed if digest is not None)

    def done(self) -> None:
        self._owner.keep(self._account, self._context, self._seen)


class ParsedItems(Generic[T]):
    """Per account, what each item of its last complete list parsed into."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[object, dict[bytes, T]]] = {}

    def listing(self, account: str, context: object) -> Listing[T]:
        """Start a list of `account`. `context` is whatever else the parse depends on (TI-ONE:
        the account's capabilities); when it differs from the last list's, nothing is reused."""
        last = self._last.get(account)
        reuse = last[1] if last is not None and last[0] == context else {}
        return Listing(self, account, context, reuse)

    def keep(self, account: str, context: object, parsed: dict[bytes, T]) -> None:
        self._last[account] = (context, parsed)
