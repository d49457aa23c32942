"""The schema promise: migrations (validators, indexes, TTLs) bring the database to
``spec.schema.version`` exactly once. Where each module runs:

* ``promise.py`` - operator: its door for the core (``promise.Promise``);
* ``observe.py`` - operator: one pass's migrations and what ``SchemaReady`` and
  ``status.schema`` say (no children: migrations run in the pass, why is there);
* ``metrics.py`` - operator: its Prometheus series;
* ``engine/``    - operator (a pass) and the ``migrate`` command (a laptop, a CI pipeline):
  the migration engine and the migrations themselves;
* ``cli.py``     - ``smartid-operator migrate plan | apply | status | rollback | repair``.
"""

