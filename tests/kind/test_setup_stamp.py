"""The Makefile's setup stamp on a laptop: stock macOS has no ``sha1sum``, and the stamp must
still name the dependency lists it was installed from (else every ``make`` reinstalls, or a
changed pyproject.toml is never installed). Runs make with a PATH holding only tools a stock
macOS has, in a copy of the three files the stamp reads."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the stamp's shell line may use, all on a stock macOS; sha1sum is not among them.
MACOS_TOOLS = ("cat", "cut", "cksum", "shasum", "date", "tr", "awk", "sed", "git")


def stamp(folder: Path, path: str) -> str:
    (folder / "print-stamp.mk").write_text("print-stamp: ; $(info $(STAMP))\n")
    make = shutil.which("make")
    assert make is not None
    proc = subprocess.run([make, "-s", "-f", "Makefile", "-f", "print-stamp.mk", "print-stamp"],
                          cwd=folder, env={"PATH": path, "HOME": str(folder)},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_stamp_follows_the_dependency_lists_without_sha1sum(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in MACOS_TOOLS:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    assert not (bin_dir / "sha1sum").exists()
    repo = tmp_path / "repo"
    (repo / "testbed").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "testbed/pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)

    first = stamp(repo, str(bin_dir))
    assert re.fullmatch(r"\.venv/\.installed-\w+", first), first
    assert stamp(repo, str(bin_dir)) == first  # the same lists, the same stamp
    with (repo / "pyproject.toml").open("a") as f:
        f.write("\n# a dependency changed\n")
    assert stamp(repo, str(bin_dir)) != first
