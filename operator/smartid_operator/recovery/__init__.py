"""Recovery: recordings and segments that reach storage while Mongo is down are indexed once
it answers again. ``contract`` is the storage layout any writer can follow; ``writer`` our
library for it; ``reindexer`` one pass; ``agent`` the loop the operator deploys per database.
"""

from smartid_operator.recovery.engine.contract import ContractError, Segment
from smartid_operator.recovery.engine.reindexer import Reindexer
from smartid_operator.recovery.engine.report import PassReport, Skip
from smartid_operator.recovery.engine.state import read_report
from smartid_operator.recovery.engine.writer import RecordingWriter, WriterStats

__all__ = ["ContractError", "PassReport", "RecordingWriter", "Reindexer", "Segment", "Skip",
           "WriterStats", "read_report"]
