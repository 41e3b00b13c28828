"""Environment variables set for the length of a block, then restored exactly."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def environment_set(variables: Mapping[str, str]) -> Iterator[None]:
    """Set ``variables`` in ``os.environ`` inside the block; afterwards each is back as it was, or absent again.

    Processes started inside the block inherit them; so does code that reads
    the environment once, at import.

    Examples
    --------
    >>> with environment_set({"DEID_EXAMPLE": "1"}):
    ...     os.environ["DEID_EXAMPLE"]
    '1'
    >>> "DEID_EXAMPLE" in os.environ
    False
    """
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
