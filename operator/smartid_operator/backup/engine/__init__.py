"""The backup engine: runs in the backup Job's pod (``backup run``), the restore Job's pod
(``backup restore``) and on a laptop (every ``backup`` verb); never in the operator.

``run`` dumps, verifies and prunes; ``verify`` restores into scratch and compares;
``restore`` the explicit restore; ``engines`` picks ``builtin_engine`` (pymongo's bson) or
``tools_engine`` (the official tools); ``layout`` the dump format; ``manifest`` and ``digest``
what proves a dump; ``retention`` and ``prune`` what goes; ``storage`` and ``s3`` where dumps
live; ``client`` the Job's own Mongo client; ``summary`` the one-line outcome a Job leaves in
its termination message (also read, pure, by the operator); ``progress`` progress lines.
"""
