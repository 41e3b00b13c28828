"""Spreadsheet-safe CSV cells (CSV/formula injection).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return may run as a formula when a released CSV is opened in a spreadsheet
(OWASP "CSV Injection"). :func:`safe_csv_cell` prefixes such a cell with a
single quote, which spreadsheets show as text. A plain number such as a
negative ``case_id`` (``-5156441036700827606``) cannot run as a formula and is
left alone, so numeric columns keep their values.
"""

from __future__ import annotations

import re

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def safe_csv_cell(value: object) -> str:
    """Return ``value`` as a string that no spreadsheet will run as a formula.

    Parameters
    ----------
    value
        Any cell value; ``None`` becomes the empty string.

    Returns
    -------
    str
        The text, prefixed with ``'`` when it starts with a formula character
        and is not a plain number.

    Raises
    ------
    None
        This function does not raise.

    Examples
    --------
    >>> safe_csv_cell("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> safe_csv_cell("-42"), safe_csv_cell("AGE_18_TO_29")
    ('-42', 'AGE_18_TO_29')
    """
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
