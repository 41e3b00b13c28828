"""Every exception deid raises, in one tree.

::

    DeidError
    ├── InputError            bad input: hold the item, continue the batch
    │   ├── UnreadableImage   cannot be decoded (truncated, corrupt, empty, bomb)
    │   ├── UnsupportedFormat not on the format allow-list, or lying about it
    │   └── InvalidCaseRow    a cases.csv row that cannot be used
    ├── ConfigError           bad deid.toml: fail fast at flow start
    ├── DetectorError         a detector failed on an image: hold it
    ├── LedgerError           the ledger cannot be read or written
    ├── OutputError           a candidate cannot be written where it belongs
    │   └── VerificationFailed a freshly encoded output failed the byte-level check: hold
    ├── WorkspaceBusy         another run holds the workspace: refuse at once, change nothing
    ├── TransientError        a fault worth retrying (the only retried kind)
    └── ReleaseBlocked        the release gate refused; carries every reason

Each error carries the ``path`` (or ``image_id``) it concerns and a ``hint``
saying what to do about it, so a message always names the file and the
problem. Foreign exceptions are wrapped at the edge of the module that calls
the foreign code, never let through.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DeidError(Exception):
    """Base class of every deid error.

    Parameters
    ----------
    message
        What went wrong.
    path
        The file concerned, if any.
    image_id
        The ledger id of the image concerned, if any.
    hint
        What the user can do about it.
    """

    code = "deid_error"

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        image_id: str | None = None,
        hint: str = "",
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.image_id = image_id
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else (f"image {self.image_id}: " if self.image_id else "")
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}"

    @property
    def reason(self) -> str:
        """Short machine-readable reason stored in the ledger: ``<code>: <message>``."""
        return f"{self.code}: {self.message}"

    def to_json(self) -> dict[str, object]:
        """JSON form for the CLI."""
        return {
            "error": self.code,
            "message": self.message,
            "path": self.path,
            "image_id": self.image_id,
            "hint": self.hint,
        }


class InputError(DeidError):
    """Bad input: the item is held with this reason and the batch goes on."""

    code = "input_error"


class UnreadableImage(InputError):
    """The file cannot be decoded safely (empty, truncated, corrupt, too large)."""

    code = "unreadable_image"


class UnsupportedFormat(InputError):
    """The file is not an allowed image format, or its content contradicts its name."""

    code = "unsupported_format"


class InvalidCaseRow(InputError):
    """A ``cases.csv`` row is missing fields, has wrong types or unsafe paths."""

    code = "invalid_case_row"


class ConfigError(DeidError):
    """The configuration is invalid; raised at load time, before any work."""

    code = "config_error"


class DetectorError(DeidError):
    """A detector failed on an image; the image is held."""

    code = "detector_error"


class LedgerError(DeidError):
    """The ledger cannot be opened, read or written."""

    code = "ledger_error"


class OutputError(DeidError):
    """A candidate or output file cannot be written (disk full, permissions, a bad ``--out``)."""

    code = "output_error"


class VerificationFailed(OutputError):
    """Encoded output bytes failed :func:`deid.verify_bytes.verify_clean`; never written, the item is held."""

    code = "verification_failed"


class WorkspaceBusy(DeidError):
    """Another deid run is using the workspace; this one stops before it changes anything."""

    code = "workspace_busy"


class TransientError(DeidError):
    """A fault that may pass (a busy database, a network hiccup); the only kind retried."""

    code = "transient_error"


class ReleaseBlocked(DeidError):
    """The release gate refused to publish.

    Parameters
    ----------
    reasons
        Every problem found, one line each.
    """

    code = "release_blocked"

    def __init__(self, reasons: Sequence[str], **kwargs: object) -> None:
        self.reasons = tuple(reasons)
        summary = f"{len(self.reasons)} problem(s): " + "; ".join(self.reasons[:5])
        super().__init__(summary, **kwargs)  # type: ignore[arg-type]


def is_transient(error: BaseException) -> bool:
    """True only for errors worth retrying; bad input never is."""
    return isinstance(error, TransientError)
