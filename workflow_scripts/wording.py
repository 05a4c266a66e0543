"""Counts in words for the console and the report: `1 call`, `2 calls`, never `1 calls` or `call(s)`."""

import math

# nouns whose plural is not the singular + "s"
IRREGULAR = {"batch": "batches", "is": "are", "comes": "come", "process": "processes"}


def plural(number: float, noun: str) -> str:
    """`noun` as it goes with `number` (a count; a float from a table counts as its whole value): the singular
    for exactly 1, else its plural (IRREGULAR, or + "s")."""
    return noun if number == 1 else IRREGULAR.get(noun, noun + "s")


def count(number: float, noun: str) -> str:
    """`1 call`, `3 calls`, `0 cells`: a whole number (a float such as 5.0 from a table is written 5) and the
    noun that goes with it (plural)."""
    whole = isinstance(number, float) and math.isfinite(number) and number.is_integer()
    return f"{int(number) if whole else number} {plural(number, noun)}"
