"""One module per schema version; each defines ``MIGRATION``. Never edit an applied one:
its checksum is recorded, and drift stops further migrations. Add a new version instead."""
