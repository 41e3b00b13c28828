"""Random public identifiers: the one place that draws them.

Release ids are random and unlinkable to the contribution: never a hash of
the original bytes (which would match a public copy), never derived from the
contributor's own ids. SCIN's ``case_id`` values and image file names are
signed 64-bit integers, so both are drawn the same way.
"""

from __future__ import annotations

import secrets

_INT64 = 2**63


def new_case_id() -> int:
    """A random signed 64-bit ``case_id``, never 0.

    Examples
    --------
    >>> -(2**63) <= new_case_id() < 2**63
    True
    """
    while True:
        value = secrets.randbits(64) - _INT64
        if value:
            return value


def new_release_image_id() -> int:
    """A random signed 64-bit id for ``dataset/images/<id>.png``, never 0."""
    return new_case_id()


def new_image_id() -> str:
    """A private ledger id for one image (128 random bits as hex)."""
    return secrets.token_hex(16)
