"""The Helm chart's files, without Helm: its CRDs are the project's, its version is the
project's, and every value in values.yaml is documented there and in docs/helm.md and
covered by values.schema.json. Rendering, linting and installing it are in
tests/cluster/test_chart_render.py and tests/cluster/test_helm.py (they need Helm)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "smartid-operator"


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def test_the_chart_crds_are_the_projects_crds() -> None:
    ours = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")
            if p.name != "kustomization.yaml"}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").iterdir()}
    assert sorted(chart) == sorted(ours)
    for name, text in ours.items():
        assert chart[name] == text, f"charts/smartid-operator/crds/{name} differs from crds/{name}"


def test_the_chart_version_is_the_projects_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (version, version)
    # ... and the image tag the kustomize install pins, so both install the same image.
    base = yaml.safe_load((ROOT / "deploy/base/kustomization.yaml").read_text())
    assert base["images"] == [{"name": "smartid-operator", "newTag": version}]


def value_paths(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key of values.yaml, at every depth, as a dotted path."""
    paths = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, dict):
            paths += value_paths(value, f"{path}.")
    return paths


def schema_node(path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema()
    for key in path.split("."):
        assert node is not None
        props = node.get("properties", {})
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]  # a map: its values' schema
        else:
            return None
    return node


def test_every_value_is_covered_by_the_schema() -> None:
    missing = [p for p in value_paths(values()) if schema_node(p) is None]
    assert not missing, f"values.yaml keys the schema does not describe: {missing}"


def test_the_schema_refuses_unknown_keys_everywhere_it_knows_the_keys() -> None:
    """A misspelt key is an error, not a value quietly ignored."""
    def walk(node: dict[str, Any], where: str) -> list[str]:
        loose = []
        # Known keys and nothing else (False), or a map whose values are checked (a schema).
        if "properties" in node and node.get("additionalProperties", True) is True:
            loose.append(where or "(top)")
        for key, child in node.get("properties", {}).items():
            loose += walk(child, f"{where}.{key}".lstrip("."))
        return loose

    assert walk(schema(), "") == []


def test_the_schema_describes_no_value_that_values_yaml_lacks() -> None:
    assert sorted(schema()["properties"]) == sorted(values())


KEY = re.compile(r"^(\s*)([A-Za-z][\w.-]*):(.*)$")


def undocumented_keys(lines: list[str]) -> list[str]:
    """Keys with no comment of their own (a comment line right above, at their indentation).
    Inside a documented key, the keys of a free-form map (resources.requests, ...) may go
    without; but where one of them has a comment (image.repository) each of them needs one."""
    def indent(line: str) -> int:
        return len(line) - len(line.lstrip())

    own: dict[int, bool] = {}
    parent: dict[int, int | None] = {}
    for i, line in enumerate(lines):
        if not KEY.match(line):
            continue
        above = lines[i - 1] if i else ""
        own[i] = above.strip().startswith("#") and indent(above) == indent(line)
        parent[i] = max((j for j in own if indent(lines[j]) < indent(line)), default=None)
    commented_groups = {parent[i] for i in own if own[i]}
    documented: dict[int, bool] = {}
    missing = []
    for i in own:
        p = parent[i]
        documented[i] = own[i] or (p is not None and p not in commented_groups
                                   and documented[p])
        if not documented[i]:
            missing.append(f"line {i + 1}: {lines[i].strip()}")
    return missing


def test_every_value_is_documented_in_values_yaml() -> None:
    missing = undocumented_keys((CHART / "values.yaml").read_text().splitlines())
    assert not missing, f"keys in values.yaml with no comment: {missing}"


def test_the_documentation_check_finds_a_key_without_a_comment() -> None:
    """The check above on a file with one key undocumented."""
    lines = ["# the scope", "scope: namespaced", "", "# the image", "image:", "  # where from",
             "  repository: x", "  # which", "  tag: ''", "", "naked: 1"]
    assert undocumented_keys(lines) == ["line 11: naked: 1"]
    assert undocumented_keys(lines[:10]) == []
    del lines[7]  # tag's comment
    assert undocumented_keys(lines) == ["line 8: tag: ''", "line 10: naked: 1"]


@pytest.mark.parametrize("key", sorted(yaml.safe_load((CHART / "values.yaml").read_text())))
def test_every_value_is_in_the_docs_values_table(key: str) -> None:
    table = [line for line in (ROOT / "docs/helm.md").read_text().splitlines()
             if line.startswith("| `")]
    assert any(line.startswith(f"| `{key}") for line in table), \
        f"docs/helm.md's values table has no row for {key}"
