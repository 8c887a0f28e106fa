"""One thin script per DVC stage (``python -m stages.<name>``), and the ``ovseg`` command (:mod:`stages.cli`).

Every stage runs under params' ``numerics`` (:mod:`core.numerics`), pinned here: Python imports this package
before the stage's module, so the pins are set before torch loads.
"""

from core.numerics import pin_from_params

pin_from_params()
