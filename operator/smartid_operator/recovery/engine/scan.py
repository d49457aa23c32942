"""The layout rules applied to a directory listing: which files are a recording, which are
input at a place the contract does not name. Pure; runs wherever the reindexer runs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from smartid_operator.recovery.engine import contract
from smartid_operator.recovery.engine.report import Skip
from smartid_operator.recovery.engine.tree import Listing

# Top-level names that are not ours and not input: a filesystem's own.
FOREIGN = frozenset({"lost+found"})
# Top-level directories the tree walk descends into (the spool has its own reader).
WALKED = frozenset({contract.RECORDINGS})


@dataclass(frozen=True)
class Entry:
    """The files of one recording: one directory, one stem."""

    dir: str  # relative to the storage root: "recordings", "recordings/20251020/1305", ...
    stem: str
    names: frozenset[str]

    @property
    def has_sidecar(self) -> bool:
        return self.stem + contract.SIDECAR_SUFFIX in self.names

    @property
    def data_names(self) -> list[str]:
        return sorted(n for n in self.names if not n.endswith(contract.SIDECAR_SUFFIX))

    @property
    def name(self) -> str:
        """The name it sorts by in its directory: its data file's, as ``storage_key`` ends."""
        data = self.data_names
        return data[0] if data else self.stem + contract.SIDECAR_SUFFIX

    @property
    def key(self) -> tuple[str, str]:
        return self.dir, self.stem

    def path(self, name: str) -> str:
        return f"{self.dir}/{name}"


def classify(listing: Listing) -> tuple[list[Entry], list[Skip]]:
    """The recordings in a listed directory, and what in it breaks the layout rules."""
    if not listing.rel:
        return [], _root(listing)
    groups: dict[str, set[str]] = defaultdict(set)
    skips: list[Skip] = []
    for file in listing.files:
        if not file.regular:
            skips.append(Skip(listing.path(file.name), "not-a-regular-file",
                              "a symbolic link, socket or device is never indexed"))
        else:
            groups[contract.stem(file.name)].add(file.name)
    entries = []
    for stem, names in sorted(groups.items()):
        if contract.valid_id(stem):
            entries.append(Entry(listing.rel, stem, frozenset(names)))
        else:
            skips += [Skip(listing.path(n), "invalid-id",
                           f"{stem!r} is not a recording id (letters, digits, '_' and '-', "
                           f"at most 128, no dots)") for n in sorted(names)]
    return entries, skips


def _root(listing: Listing) -> list[Skip]:
    """The storage root holds recordings/, spool/ and nothing else of anyone's."""
    known = {*WALKED, contract.SPOOL, *FOREIGN}
    return [Skip(listing.path(name), "misplaced",
                 "not under recordings/ or spool/, where the contract puts input")
            for name in [*(f.name for f in listing.files), *listing.subdirs, *listing.unwalked]
            if name not in known]


def in_order(entries: list[Entry], subdirs: tuple[str, ...]) -> list[Entry | str]:
    """A directory's recordings and subdirectories in the order their full paths sort."""
    items: list[tuple[str, Entry | str]] = [(e.name, e) for e in entries]
    items += [(d + "/", d) for d in subdirs]
    return [item for _, item in sorted(items, key=lambda pair: pair[0])]
