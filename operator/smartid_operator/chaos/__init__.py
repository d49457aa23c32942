"""The chaos promise: a ``SmartIDOutageTest`` run scales the Mongo workload to 0, writes
recordings and segments to the recovery storage during the outage, scales it back and proves,
id by id, that every write was reindexed exactly once. Where each module runs:

* ``promise.py``  - operator: its door for the core (``promise.Promise``): the runs' outcome
  as ``status.lastOutageTest`` and ``OutageTestPassed``;
* ``manager.py``  - operator: the runs' tasks, aborts, restarts, the sweep, the schedule;
* ``schedule.py`` - pure: when a scheduled run is due;
* ``children.py`` - pure: the writer Job, the report ConfigMap, a scheduled run;
* ``metrics.py``  - operator: its Prometheus series;
* ``engine/``     - one run (operator), the writer (its Job's pod), the runner (a laptop);
* ``scenarios/``  - the shipped scenarios (package data);
* ``cli.py``      - ``smartid-operator chaos run | write``.
"""

PLURAL = "smartidoutagetests"
KIND = "SmartIDOutageTest"
# On the workload, before it is touched: which run scaled it and the replicas to give back.
ANNOTATION = "smartid.io/outage-test"
COMPONENT = "outage-test"
