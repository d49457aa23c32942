"""The outage-test engine. ``executor`` runs one test as a task in the operator, with
``preconditions``, ``probe`` (through the Mongo seam), ``recover`` (after a restart) and
``env`` (what a run may touch); ``writer`` runs in the writer Job's pod; ``runner`` and
``scenario`` on a laptop or in CI (``chaos run``). ``model``, ``timeline`` and ``report`` are
pure and run wherever they are called.
"""
