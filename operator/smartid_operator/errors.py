"""The operator's own errors: what the I/O seams raise instead of their drivers' exceptions."""

from __future__ import annotations


class ConfigError(Exception):
    """A person must fix the spec or what it points at (a Secret, a key, a workload, a URI).

    Not retried on a timer of its own: the level-based health check notices the fix.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class KubeError(Exception):
    """The Kubernetes API refused or failed a request (transient unless it says otherwise)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
