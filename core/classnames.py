"""Class names: ``"name, synonym, ..."`` in memory; the first part is the display name.

On the command line classes are separated by commas and synonyms by ``|``.
"""

from __future__ import annotations

from collections.abc import Sequence

SYNONYM_SEPARATOR = "|"


def split_synonyms(class_name: str) -> list[str]:
    """``"building, edifice"`` -> ``["building", "edifice"]``; raises on a name with no words."""
    synonyms = [part.strip() for part in class_name.split(",") if part.strip()]
    if not synonyms:
        raise ValueError(f"class name {class_name!r} has no words")
    return synonyms


def display_name(class_name: str) -> str:
    """``"building, edifice"`` -> ``"building"``."""
    return class_name.split(",")[0].strip()


def display_names(class_names: Sequence[str]) -> list[str]:
    """Each class's display name; a repeated one gets ``#<index>`` appended so that keys stay unique."""
    firsts = [display_name(name) for name in class_names]
    counts: dict[str, int] = {}
    for name in firsts:
        counts[name] = counts.get(name, 0) + 1
    return [name if counts[name] == 1 else f"{name} #{i}" for i, name in enumerate(firsts)]


def parse_class_list(text: str) -> list[str]:
    """``"cat, dog|puppy"`` → ``["cat", "dog, puppy"]``.

    Whitespace around names is dropped. An empty list, an empty class (``"cat,,dog"``
    is fine, ``"cat, |"`` is not) and a display name given twice are ``ValueError``.
    """
    classes, seen = [], set()
    for part in text.split(","):
        if not part.strip():
            continue
        synonyms = [s.strip() for s in part.split(SYNONYM_SEPARATOR)]
        if not all(synonyms):
            raise ValueError(f"class {part.strip()!r} has an empty synonym (synonyms are separated by '|')")
        key = synonyms[0].lower()
        if key in seen:
            raise ValueError(f"class {synonyms[0]!r} is listed twice")
        seen.add(key)
        classes.append(", ".join(synonyms))
    if not classes:
        raise ValueError(f"no class names in {text!r} (separate classes with commas, synonyms with '|')")
    return classes
