"""The jobs' accounting rule: every input is used or rejected, exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence


class ReconciliationError(RuntimeError):
    """The job's outputs do not account for every input exactly once."""


def reconcile(what: str, ids_in: Collection[int], ids_used: Collection[int], ids_rejected: Sequence[int]) -> None:
    """Check that every input id is used or rejected, exactly once, and nothing else is.

    ``ids_used`` may repeat ids (a caption feeds several noun rows); ``ids_rejected``
    may not. Raises :class:`ReconciliationError` with the counts and examples.
    """
    ids_in = set(ids_in)
    used = set(ids_used)
    rejected = set(ids_rejected)
    problems = []
    repeated = sorted(i for i, n in Counter(ids_rejected).items() if n > 1)
    if repeated:
        problems.append(f"rejected more than once: {repeated[:5]}")
    both = sorted(used & rejected)
    if both:
        problems.append(f"both used and rejected: {both[:5]}")
    lost = sorted(ids_in - used - rejected)
    if lost:
        problems.append(f"neither used nor rejected: {lost[:5]}")
    unknown = sorted((used | rejected) - ids_in)
    if unknown:
        problems.append(f"in the outputs but not among the inputs: {unknown[:5]}")
    if problems:
        raise ReconciliationError(
            f"{what}: {len(ids_in)} in, {len(used)} used + {len(ids_rejected)} rejected; " + "; ".join(problems)
        )
