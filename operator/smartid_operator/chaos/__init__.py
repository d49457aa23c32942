"""Chaos outage tests: the proof promise. A ``SmartIDOutageTest`` run scales the Mongo workload
to 0, writes recordings and segments to the recovery storage during the outage, scales it back
and proves, id by id, that every write was reindexed exactly once.

``model`` (settings, ids, verdict), ``timeline`` and ``report`` are pure; ``executor`` runs
one test against the two seams; ``manager`` owns the runs' tasks inside the operator;
``runner`` and ``writer`` are the CLI's ``chaos run`` and ``chaos write`` (the Job).
"""

PLURAL = "smartidoutagetests"
KIND = "SmartIDOutageTest"
# On the workload, before it is touched: which run scaled it and the replicas to give back.
ANNOTATION = "smartid.io/outage-test"
COMPONENT = "outage-test"
