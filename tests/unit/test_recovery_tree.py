"""The tree walk and the layout rules, on a real directory tree (no Mongo): a walk lists only
the directories whose mtime moved, at any depth; entries come in the order paths sort."""

from __future__ import annotations

import os
import time
from pathlib import Path

from smartid_operator.recovery.engine import contract, scan
from smartid_operator.recovery.engine.notify import Notifier
from smartid_operator.recovery.engine.tree import Tree


def touch(path: Path, body: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)


def age(path: Path, seconds: float) -> None:
    """Move a directory's mtime back, as if its last change were long past."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def settled_tree(root: Path) -> Tree:
    tree = Tree(root, top=scan.WALKED, settle_seconds=0)
    tree.walk()
    return tree


def test_a_walk_lists_only_directories_whose_mtime_moved(tmp_path: Path) -> None:
    for d in ("recordings/a/1", "recordings/a/2", "recordings/b", "spool"):
        touch(tmp_path / d / "r.dat")
    tree = settled_tree(tmp_path)
    first = tree.walk()  # nothing changed since the baseline
    assert first.listings == [] and first.directories == 6  # root, recordings, a, 1, 2, b
    touch(tmp_path / "recordings/a/2/new.json")
    touch(tmp_path / "recordings/c/d/e/deep.json")
    touch(tmp_path / "spool/seg.jsonl")  # the spool has its own reader
    second = tree.walk()
    listed = sorted(listing.rel for listing in second.listings)
    assert listed == ["recordings", "recordings/a/2", "recordings/c", "recordings/c/d",
                      "recordings/c/d/e"]
    assert second.directories == 9


def test_a_directory_changed_in_the_tick_of_its_listing_is_listed_again(tmp_path: Path) -> None:
    touch(tmp_path / "recordings/a/r.json")
    tree = Tree(tmp_path, top=scan.WALKED, settle_seconds=2)
    tree.walk()
    # Same mtime as the listing saw (a coarse clock), but a new file: the settle window
    # makes the next walk look again, and it finds the file.
    directory = tmp_path / "recordings/a"
    mtime = directory.stat().st_mtime_ns
    touch(directory / "s.json")
    os.utime(directory, ns=(mtime, mtime))
    listings = tree.walk().listings
    assert [listing.rel for listing in listings] == ["recordings/a"]
    assert {f.name for f in listings[0].files} == {"r.json", "s.json"}


def test_removed_directories_are_forgotten(tmp_path: Path) -> None:
    touch(tmp_path / "recordings/a/b/r.dat")
    tree = settled_tree(tmp_path)
    assert tree.known == 4
    (tmp_path / "recordings/a/b/r.dat").unlink()
    (tmp_path / "recordings/a/b").rmdir()
    tree.walk()
    assert tree.known == 3


def test_entries_come_in_the_order_their_full_paths_sort(tmp_path: Path) -> None:
    for name in ("a.dat", "a.json", "a-b/x.dat", "a-b/x.json", "a/y.dat", "a/y.json",
                 "b.dat", "b.json"):
        touch(tmp_path / "recordings" / name)
    tree = Tree(tmp_path, top=scan.WALKED)

    def walk(rel: str) -> list[str]:
        listing = tree.list_now(rel)
        assert listing is not None
        entries, skips = scan.classify(listing)
        assert skips == []
        keys: list[str] = []
        for item in scan.in_order(entries, listing.subdirs):
            keys += walk(f"{rel}/{item}") if isinstance(item, str) else [
                item.path(item.name)]
        return keys

    keys = walk("recordings")
    assert keys == sorted(keys) == ["recordings/a-b/x.dat", "recordings/a.dat",
                                    "recordings/a/y.dat", "recordings/b.dat"]


def test_what_breaks_the_layout_is_named(tmp_path: Path) -> None:
    touch(tmp_path / "stray.dat")
    (tmp_path / "lost+found").mkdir()
    (tmp_path / "other").mkdir()
    touch(tmp_path / "recordings/bad.name.with.dots.json")
    touch(tmp_path / "recordings/.tmp-hidden.json")
    touch(tmp_path / "recordings/ok_1.json")
    (tmp_path / "recordings/link.json").symlink_to(tmp_path / "stray.dat")
    tree = Tree(tmp_path, top=scan.WALKED)
    root = tree.list_now("")
    recordings = tree.list_now(contract.RECORDINGS)
    assert root is not None and recordings is not None
    assert {(s.path, s.reason) for s in scan.classify(root)[1]} == {
        ("stray.dat", "misplaced"), ("other", "misplaced")}
    entries, skips = scan.classify(recordings)
    assert [e.stem for e in entries] == ["bad", "ok_1"]  # the stem ends at the first dot
    assert {(s.path, s.reason) for s in skips} == {("recordings/link.json", "not-a-regular-file")}


def test_inotify_says_when_to_walk_and_ignores_writes_in_flight(tmp_path: Path) -> None:
    (tmp_path / "recordings").mkdir()
    (tmp_path / "spool").mkdir()
    notifier = Notifier(tmp_path)
    assert notifier.start() and notifier.active
    try:
        assert not notifier.changed()
        touch(tmp_path / "recordings/.tmp-in-flight.json")  # a hidden name: not yet news
        touch(tmp_path / "spool/seg.jsonl.open")  # the spool has its own watch
        time.sleep(0.3)
        assert not notifier.changed()
        (tmp_path / "recordings/t/2025/cam-1").mkdir(parents=True)
        (tmp_path / "recordings/.tmp-in-flight.json").rename(
            tmp_path / "recordings/t/2025/cam-1/r-1.json")
        deadline = time.monotonic() + 5
        while not notifier.changed():
            assert time.monotonic() < deadline, "no event for a rename into a new directory"
            time.sleep(0.01)
    finally:
        notifier.stop()
