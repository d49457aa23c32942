"""The recovery engine: runs in the recovery agent's pod and in ``smartid-operator reindex``;
``contract`` and ``writer`` also in a pipeline's own process. Never in the operator, which
reads only the report ``state`` leaves in Mongo.

``agent`` the loop; ``reindexer`` one pass; ``tree``, ``notify`` and ``scan`` what changed
on the volume and what it is; ``inserts`` insert-if-absent; ``spool`` and ``replay`` the
segment spool; ``link`` the agent's Mongo connection; ``state`` and ``report`` what a pass
leaves; ``metrics`` the agent's own series; ``contract`` the layout; ``writer`` the library.
"""
