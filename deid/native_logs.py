"""Keep the native libraries' chatter out of the operator's terminal.

mediapipe (absl/glog) and TensorFlow Lite write straight to file descriptor
2 from C++: a line per model load and some per image ("Created TensorFlow
Lite XNNPACK delegate", "Feedback manager requires a model with a single
signature", "Using NORM_RECT without IMAGE_DIMENSIONS"), in every worker
process, ignoring Python's logging and the GLOG/TF environment variables.
:func:`filter_native_stderr` routes descriptor 2 through a pipe once per
process and drops only those informational and warning lines; everything
else (Python's own log lines, tracebacks, native errors and fatals) passes
through unchanged.
"""

from __future__ import annotations

import os
import re
import threading

_DROPPED = re.compile(
    rb"^(?:[IW]\d{4} [0-9:. ]+\d+ \S+:\d+\]"  # absl/glog INFO and WARNING lines (E and F pass)
    rb"|INFO: Created TensorFlow Lite"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)"
)
_installed = False
_lock = threading.Lock()


def is_native_chatter(line: bytes) -> bool:
    """Whether ``line`` is an informational or warning line of absl, glog or TensorFlow Lite.

    Examples
    --------
    >>> is_native_chatter(b"W0000 00:00:1796164002.174982   19229 inference_feedback_manager.cc:114] Feedback")
    True
    >>> is_native_chatter(b"E0000 00:00:1796164002.174982   19229 calculator_graph.cc:887] failed")
    False
    >>> is_native_chatter(b"Traceback (most recent call last):")
    False
    """
    return bool(_DROPPED.match(line))


def filter_native_stderr() -> None:
    """Route this process's descriptor 2 through a filter that drops native chatter (idempotent).

    Nothing is buffered beyond one line; the filter thread is a daemon and the
    original descriptor is kept, so output still reaches the terminal or log.
    """
    global _installed
    with _lock:
        if _installed:
            return
        original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        thread = threading.Thread(target=_pump, args=(read_end, original), name="deid-native-stderr", daemon=True)
        thread.start()
        _installed = True


def _pump(read_end: int, original: int) -> None:
    with os.fdopen(read_end, "rb", buffering=0) as source:
        pending = b""
        while chunk := source.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_native_chatter(line))
            if kept:
                os.write(original, kept)
        if pending and not is_native_chatter(pending):
            os.write(original, pending)
