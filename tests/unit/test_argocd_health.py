"""The Argo CD health check, run as Argo CD runs one from argocd-cm.

Argo CD (util/lua/lua.go) runs a health script in gopher-lua, a Lua 5.1, with only the
``package``, base and ``table`` libraries opened and ``require("os")`` giving ``os.time`` and
``os.date``; no ``string``, ``math``, ``io``, ``coroutine`` or ``debug``, and no string methods
(gopher-lua sets the string metatable only when it opens ``string``). ``argocd_health``
rebuilds that environment in Lua 5.1 (lupa) and reads the result as Argo CD does. The cases
are Argo CD's own ``health_test.yaml`` beside the script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51  # type: ignore[import-untyped]

from tests.argocd_lua import ARGOCD, CHECK, KEY, SCRIPT, argocd_health


def health_tests() -> list[Any]:
    cases = yaml.safe_load((CHECK / "health_test.yaml").read_text())["tests"]
    return [pytest.param(c["inputPath"], c["healthStatus"], id=Path(c["inputPath"]).stem)
            for c in cases]


@pytest.mark.parametrize(("input_path", "expected"), health_tests())
def test_health_test_yaml_case(input_path: str, expected: dict[str, str]) -> None:
    obj = yaml.safe_load((CHECK / input_path).read_text())
    assert argocd_health(SCRIPT, obj) == expected


def test_every_testdata_object_has_a_case() -> None:
    listed = {c["inputPath"] for c in yaml.safe_load((CHECK / "health_test.yaml").read_text())
              ["tests"]}
    present = {f"testdata/{p.name}" for p in (CHECK / "testdata").glob("*.yaml")}
    assert listed == present
    verdicts = {c["healthStatus"]["status"] for c in yaml.safe_load(
        (CHECK / "health_test.yaml").read_text())["tests"]}
    assert verdicts == {"Healthy", "Progressing", "Degraded"}


@pytest.mark.parametrize("snippet", [
    'string.format("%d", 1)',
    '("ready"):upper()',
    "math.floor(1.5)",
    "os.time()",
    'io.write("x")',
    "coroutine.create(print)",
    "debug.traceback()",
])
def test_sandbox_refuses_what_argocd_does_not_load(snippet: str) -> None:
    """A script leaning on any of these would pass a full Lua and fail in Argo CD."""
    script = f'local x = {snippet}\nreturn {{status = "Healthy", message = "no"}}'
    with pytest.raises(lua51.LuaError):
        argocd_health(script, {})


def test_sandbox_keeps_what_argocd_loads() -> None:
    script = """
    local os = require("os")
    local t = {}
    table.insert(t, tostring(obj.n))
    table.insert(t, type(os.time()))
    return {status = "Healthy", message = table.concat(t, " ") .. " " .. #obj.items}
    """
    got = argocd_health(script, {"n": 3, "items": ["a", "b"]})
    assert got == {"status": "Healthy", "message": "3 number 2"}


def test_an_endless_script_is_stopped() -> None:
    with pytest.raises(lua51.LuaError, match="too long"):
        argocd_health("while true do end", {})


def test_an_invalid_status_is_unknown() -> None:
    got = argocd_health('return {status = "Fine", message = "m"}', {})
    assert got == {"status": "Unknown", "message": "Lua returned an invalid health status"}


def _inlined() -> dict[str, str]:
    def load(name: str) -> Any:
        return yaml.safe_load((ARGOCD / name).read_text())

    checks = load("argocd-operator-health-check.yaml")["spec"]["resourceHealthChecks"]
    (entry,) = [c for c in checks if (c["group"], c["kind"]) == ("smartid.io", "SmartIDDatabase")]
    return {
        "argocd-cm-patch.yaml": load("argocd-cm-patch.yaml")["data"][KEY],
        "helm-values.yaml": load("helm-values.yaml")["configs"]["cm"][KEY],
        "argocd-operator-health-check.yaml": entry["check"],
    }


@pytest.mark.parametrize("name", sorted(_inlined()))
def test_each_install_route_carries_the_same_script(name: str) -> None:
    assert _inlined()[name] == SCRIPT, f"copy health.lua into deploy/argocd/{name}"


def test_the_patch_adds_only_our_key() -> None:
    """A merge patch with nothing but our key: nothing else of argocd-cm can change."""
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert patch == {"data": {KEY: SCRIPT}}
