"""deid: de-identify crowdsourced medical photos and their self-reported data.

The public API is re-exported here; see README.md for the pipeline and
DESIGN.md for the architecture.
"""

import logging

from deid.config import Config, load_config
from deid.errors import (
    ConfigError,
    DeidError,
    DetectorError,
    InputError,
    InvalidCaseRow,
    LedgerError,
    ReleaseBlocked,
    TransientError,
    UnreadableImage,
    UnsupportedFormat,
)
from deid.types import (
    Action,
    Box,
    Case,
    CaseImage,
    Decision,
    Fingerprint,
    ImageRecord,
    Match,
    Outcome,
    Region,
    RegionKind,
    ShotType,
    Status,
)

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Action",
    "Box",
    "Case",
    "CaseImage",
    "Config",
    "ConfigError",
    "Decision",
    "DeidError",
    "DetectorError",
    "Fingerprint",
    "ImageRecord",
    "InputError",
    "InvalidCaseRow",
    "LedgerError",
    "Match",
    "Outcome",
    "Region",
    "RegionKind",
    "ReleaseBlocked",
    "ShotType",
    "Status",
    "TransientError",
    "UnreadableImage",
    "UnsupportedFormat",
    "__version__",
    "load_config",
]
