"""Free-text scrubbing: remove what could identify a contributor from a description.

Free text is dropped from a release unless ``demographics.keep_free_text`` is
set; when it is kept, every description goes through :class:`TextScrubber`,
which replaces each finding with a bracketed placeholder and counts what it
removed per category, for the anonymity report.

Categories, applied in this order (earlier ones win where patterns overlap):

==============  ==============  ==========================================================
category        placeholder     what matches
==============  ==============  ==========================================================
email           ``[EMAIL]``     ``name@host.tld``
url             ``[URL]``       ``http(s)://…``, ``www.…``, bare ``host.tld/…`` for common TLDs
date            ``[DATE]``      ``2024-03-12``, ``12/03/2024``, ``12.3.24``, ``12 March 2024``,
                                ``March 12, 2024``, ``Mar 12``, ``12th of March``
street_address  ``[ADDRESS]``   a house number, one to four words and a street suffix
                                (``12 Baker Street``, ``4b Elm Rd``), and UK / Canadian postcodes
phone           ``[PHONE]``     7 to 15 digits in groups, optional ``+country`` and ``(area)``
id_number       ``[ID]``        a token of 5+ characters with at least 4 digits (MRN,
                                NHS, SSN, passport, ZIP+4, card numbers)
name            ``[NAME]``      any name on the configured list, whole words, any case
==============  ==============  ==========================================================

Scrubbing errs towards removing too much: ``COVID-19`` survives (two digits)
but ``AB123456`` does not. A bare four-digit year is kept: it is coarse and
often medically relevant ("since 2019").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deid.errors import ConfigError

SCRUB_CATEGORIES = ("email", "url", "date", "street_address", "phone", "id_number", "name")
PLACEHOLDERS: Mapping[str, str] = {
    "email": "[EMAIL]",
    "url": "[URL]",
    "date": "[DATE]",
    "street_address": "[ADDRESS]",
    "phone": "[PHONE]",
    "id_number": "[ID]",
    "name": "[NAME]",
}

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_TLDS = r"(?:com|org|net|edu|gov|io|co|uk|de|fr|es|it|nl|ca|au|in|info|biz|me|ly|app|health)"
_STREET_SUFFIX = (
    r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    r"terrace|close|crescent|cres|square|sq|highway|hwy|parkway|pkwy|row|gardens|grove|hill)\b\.?"
)

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"\b[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.IGNORECASE)),
    (
        "url",
        re.compile(
            rf"(?:\bhttps?://|\bwww\.)[^\s<>\"']*[^\s<>\"'.,;:!?)]"
            rf"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.{_TLDS}\b(?:/[^\s<>\"']*[^\s<>\"'.,;:!?)])?/?",
            re.IGNORECASE,
        ),
    ),
    (
        "date",
        re.compile(
            r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b"
            r"|\b\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})\b"
            rf"|\b{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?\b"
            rf"|\b{_MONTH}\s+{_DAY}(?:,?\s+\d{{4}})?\b",
            re.IGNORECASE,
        ),
    ),
    (
        "street_address",
        re.compile(
            rf"\b\d{{1,5}}[a-z]?\s+(?:[a-z][\w'-]*\s+){{1,4}}{_STREET_SUFFIX}"
            r"|\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b"  # UK postcode
            r"|\b[A-Z]\d[A-Z]\s?\d[A-Z]\d\b",  # Canadian postcode
            re.IGNORECASE,
        ),
    ),
    ("phone", re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d(?:[\s.-]?\d){6,14}\b")),
    ("id_number", re.compile(r"\b(?=(?:[A-Za-z-]*\d){4})[A-Za-z0-9][A-Za-z0-9-]{3,}[A-Za-z0-9]\b")),
)


@dataclass(frozen=True, slots=True)
class ScrubResult:
    """A scrubbed text and how many findings of each category it lost."""

    text: str
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def removed(self) -> int:
        """Total number of findings replaced."""
        return sum(self.counts.values())


class TextScrubber:
    """Replace emails, URLs, dates, addresses, phones, ID-like numbers and listed names.

    Parameters
    ----------
    names
        Names to remove wherever they appear as whole words (any case).
        Compiled once into one pattern, longest first.

    Raises
    ------
    None
        Construction does not raise.

    Examples
    --------
    >>> scrubber = TextScrubber(names=["Alice"])
    >>> result = scrubber.scrub("Alice (alice@example.org) saw it on 3 May 2024, call 020 7946 0958")
    >>> result.text
    '[NAME] ([EMAIL]) saw it on [DATE], call [PHONE]'
    >>> dict(result.counts)
    {'email': 1, 'date': 1, 'phone': 1, 'name': 1}
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        cleaned = sorted({name.strip() for name in names if name.strip()}, key=len, reverse=True)
        self._names: re.Pattern[str] | None = None
        if cleaned:
            alternation = "|".join(re.escape(name) for name in cleaned)
            self._names = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)

    def scrub(self, text: str) -> ScrubResult:
        """Scrub one text.

        Parameters
        ----------
        text
            A free-text answer.

        Returns
        -------
        ScrubResult
            The text with findings replaced and the count per category (only
            categories with findings appear).

        Raises
        ------
        None
            This method does not raise.
        """
        counts: Counter[str] = Counter()
        for category, pattern in _PATTERNS:
            text, found = pattern.subn(PLACEHOLDERS[category], text)
            if found:
                counts[category] += found
        if self._names is not None:
            text, found = self._names.subn(PLACEHOLDERS["name"], text)
            if found:
                counts["name"] += found
        # Collapse control characters (tabs, newlines) so a cell stays one line.
        text = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
        return ScrubResult(text, dict(counts))


def load_name_list(path: str | Path) -> tuple[str, ...]:
    """Read a name list: one name per line, ``#`` starts a comment.

    Parameters
    ----------
    path
        A UTF-8 text file.

    Returns
    -------
    tuple of str
        The names, in file order, without blanks and comments.

    Raises
    ------
    ConfigError
        If the file cannot be read or is not UTF-8.
    """
    file = Path(path)
    try:
        lines = file.read_text("utf-8").splitlines()
    except OSError as error:
        raise ConfigError(
            f"cannot read name list: {error.strerror}", path=file, hint="fix demographics.names_file"
        ) from error
    except UnicodeDecodeError as error:
        raise ConfigError("name list is not UTF-8", path=file, hint="save it as UTF-8") from error
    return tuple(name for line in lines if (name := line.split("#", 1)[0].strip()))
