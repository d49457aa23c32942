"""The recovery promise: recordings and segments that reach storage while Mongo is down are
indexed once it answers again. Where each module runs:

* ``promise.py``  - operator: its door for the core (``promise.Promise``);
* ``observe.py``  - operator, pure: ``Recovered`` and ``status.recovery`` from the agent's
  report, which the pass reads from Mongo;
* ``children.py`` - pure: the agent's Deployment;
* ``engine/``     - the agent's pod (``recovery agent``), ``reindex`` on a laptop, and the
  pipeline's own process (``writer``, the library for the storage ``contract``);
* ``cli.py``      - ``smartid-operator reindex`` and ``smartid-operator recovery agent | status``.

Re-exported: the writer library and the reindexer, for pipelines and tools.
"""

from smartid_operator.recovery.engine.contract import ContractError, Segment
from smartid_operator.recovery.engine.reindexer import Reindexer
from smartid_operator.recovery.engine.report import PassReport, Skip
from smartid_operator.recovery.engine.state import read_report
from smartid_operator.recovery.engine.writer import RecordingWriter, WriterStats

__all__ = ["ContractError", "PassReport", "RecordingWriter", "Reindexer", "Segment", "Skip",
           "WriterStats", "read_report"]
