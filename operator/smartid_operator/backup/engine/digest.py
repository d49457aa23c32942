"""The content hash that ties a dump to its source and to every restore of it.

Per collection: the sum, modulo 2**256, of the SHA-256 of each document's raw BSON bytes.
A sum does not depend on order (a collection scan, a dump file and a restored copy return
documents in different orders), and unlike XOR a duplicated document does not cancel out. It
needs one pass and constant memory, and equal bytes mean equal field order and types too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

ALGORITHM = "sha256-sum-mod-2^256 of raw BSON documents"
_MOD = 1 << 256


@dataclass
class ContentDigest:
    count: int = 0
    bson_bytes: int = 0
    _sum: int = 0

    def add(self, raw: bytes | memoryview) -> None:
        self.count += 1
        self.bson_bytes += len(raw)
        self._sum = (self._sum + int.from_bytes(hashlib.sha256(raw).digest(), "big")) % _MOD

    def update(self, raws: Iterable[bytes | memoryview]) -> ContentDigest:
        for raw in raws:
            self.add(raw)
        return self

    @property
    def hexdigest(self) -> str:
        return f"{self._sum:064x}"
