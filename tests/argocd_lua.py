"""Argo CD's health-check runtime, rebuilt for the tests of both tiers (see
tests/unit/test_argocd_health.py for what Argo CD loads and why)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lupa import lua51  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
ARGOCD = ROOT / "deploy/argocd"
CHECK = ARGOCD / "resource_customizations/smartid.io/SmartIDDatabase"
SCRIPT = (CHECK / "health.lua").read_text()
KEY = "resource.customizations.health.smartid.io_SmartIDDatabase"

# gopher-lua's OpenBase globals, plus the package and table libraries.
BASE = ("assert", "collectgarbage", "dofile", "error", "getfenv", "getmetatable", "ipairs",
        "load", "loadfile", "loadstring", "module", "newproxy", "next", "pairs", "pcall",
        "print", "rawequal", "rawget", "rawset", "require", "select", "setfenv",
        "setmetatable", "tonumber", "tostring", "type", "unpack", "xpcall", "_G", "_VERSION")
ALLOWED = (*BASE, "package", "table")
# gitops-engine's health codes; anything else Argo CD turns into Unknown.
CODES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
# Argo CD cancels a script after 1 s; an instruction budget stands in for that clock.
BUDGET = 10_000_000

_SANDBOX = """
function(allowed, budget)
  local safe_os = {time = os.time, date = os.date}
  debug.sethook(function() error("script ran too long") end, "", budget)
  getmetatable("").__index = nil
  local keep = {}
  for _, name in ipairs(allowed) do keep[name] = true end
  for name in pairs(_G) do
    if not keep[name] then _G[name] = nil end
  end
  for name in pairs(package.loaded) do
    if not keep[name] then package.loaded[name] = nil end
  end
  package.preload.os = function() return safe_os end
end
"""


def argocd_health(script: str, obj: dict[str, Any]) -> dict[str, str]:
    """The health status Argo CD would report for ``obj``, as {status, message}."""
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    runtime.eval(_SANDBOX)(runtime.table_from(list(ALLOWED)), BUDGET)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(script)
    if lua51.lua_type(result) != "table":
        raise TypeError(f"expect table output from Lua script, not {lua51.lua_type(result)}")
    status, message = result["status"], result["message"]
    if status not in CODES:
        return {"status": "Unknown", "message": "Lua returned an invalid health status"}
    return {"status": str(status), "message": "" if message is None else str(message)}
