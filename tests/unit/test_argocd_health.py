"""The Argo CD health check, run for real in Lua 5.1 (what Argo CD's gopher-lua speaks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "deploy/argocd/health.lua").read_text()


def to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value


def health(obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = to_lua(runtime, obj)
    result = runtime.execute(SCRIPT)
    return str(result["status"]), str(result["message"])


def cond(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-11-25T14:00:00Z"}


def db(generation: int = 1, **status: Any) -> dict[str, Any]:
    return {"apiVersion": "smartid.io/v1alpha1", "kind": "SmartIDDatabase",
            "metadata": {"name": "smartid", "generation": generation},
            "status": status or None}


READY = [cond("ResourcesReady", "True", "Applied", "ok"),
         cond("MongoReachable", "True", "Pinged", "MongoDB 7.0.14 answered ping in 1 ms"),
         cond("Ready", "True", "AllConditionsMet", "the database is as declared")]
DOWN = [cond("ResourcesReady", "True", "Applied", "ok"),
        cond("MongoReachable", "False", "Unreachable", "MongoDB did not answer"),
        cond("Ready", "False", "Unreachable", "MongoReachable: MongoDB did not answer")]
MISSING_SECRET = [cond("MongoReachable", "False", "SecretNotFound", "Secret smartid/x missing"),
                  cond("Ready", "False", "SecretNotFound", "MongoReachable: Secret missing")]
STARTING = [cond("ResourcesReady", "True", "Applied", "ok"),
            cond("Ready", "False", "Reconciling", "not observed yet: MongoReachable")]


@pytest.mark.parametrize(("obj", "verdict", "message"), [
    (db(), "Progressing", "Waiting for the operator to report status"),
    (db(phase="Ready", observedGeneration=1, conditions=READY), "Healthy",
     "the database is as declared"),
    (db(generation=2, phase="Ready", observedGeneration=1, conditions=READY), "Progressing",
     "observe generation 2"),
    (db(phase="Degraded", observedGeneration=1, conditions=DOWN), "Degraded",
     "MongoDB did not answer"),
    (db(phase="Failed", observedGeneration=1, conditions=MISSING_SECRET), "Degraded",
     "Secret missing"),
    (db(phase="Progressing", observedGeneration=1, conditions=STARTING), "Progressing",
     "not observed yet"),
], ids=["no-status", "ready", "new-generation", "mongo-down", "bad-secret", "starting"])
def test_verdict_for_each_sample_status(obj: dict[str, Any], verdict: str, message: str) -> None:
    got, text = health(obj)
    assert got == verdict
    assert message in text


def test_argocd_cm_patch_carries_the_same_script() -> None:
    patch = yaml.safe_load((ROOT / "deploy/argocd/argocd-cm-patch.yaml").read_text())
    inlined = patch["data"]["resource.customizations.health.smartid.io_SmartIDDatabase"]
    assert inlined.strip() == SCRIPT.strip()
