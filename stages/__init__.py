"""One thin script per DVC stage (``python -m stages.<name>``), and the ``ovseg`` command (:mod:`stages.cli`)."""
