"""Reading an ONNX model file: where it may come from, how big it may be, and its graph without its weights.

Nothing in the file is executed and no tensor payload is loaded. A short scan of the protobuf framing
(ModelProto -> GraphProto -> initializer) notes each initializer's name, dims, element type and stored byte count,
keeps the bytes of small ones whole (shape constants, clip bounds), and skips the rest; everything else (nodes,
inputs, outputs, opsets, functions) is parsed by the `onnx` package from those bytes. So ResNet-50's 100 MB file is
read in a few milliseconds, reading (os.pread) only the bytes the scan looks at, where `onnx.load`
copies every weight twice (file bytes, then protobuf). An initializer whose stored bytes disagree with its dims
(a truncated file, a 2 GiB claim over 0 bytes) is an error naming it; external data is never opened.

Paths: a `model` path must resolve (symlinks followed, with os.path.realpath) under one of the allowed roots, and
be a regular file no larger than max_bytes; the size is checked before anything is read. The server decides the
roots (its working directory and --model-dir over stdio, only --model-dir over HTTP).
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import stat
from typing import Any

from .errors import LimitError, SpecError
from .spec import _limit, short

EXPORT_LINE = 'torch.onnx.export(model, torch.zeros(1, 3, 224, 224), "model.onnx", dynamo=False)'
"""The one line that turns a PyTorch module into a file the walk reads whole (errors about custom modules show it)."""
MAX_MODEL_BYTES = 512 * 1024 * 1024
"""Default bound on a model file's size (server.limits.Limits.max_model_bytes)."""
SMALL_TENSOR_BYTES = 64 * 1024
"""Initializers up to this size are kept whole (their values may be read: Reshape's shape, Clip's bounds, ...)."""

# Field numbers of onnx.proto (checked against onnx's own descriptors by tests/test_onnx_model.py).
MODEL_GRAPH = 7
GRAPH_INITIALIZER = 5
T_DIMS, T_DATA_TYPE, T_SEGMENT, T_FLOAT, T_INT32, T_STRING, T_INT64 = 1, 2, 3, 4, 5, 6, 7
T_NAME, T_RAW, T_DOUBLE, T_UINT64, T_EXTERNAL, T_LOCATION = 8, 9, 10, 11, 13, 14

BITS = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 14: 64, 15: 128, 16: 16,
        17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8, 25: 2, 26: 2}
"""Bits per element of each TensorProto.DataType (strings and types without a fixed width are left out)."""
TYPE_NAMES = {0: "undefined", 1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
              8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
              15: "complex128", 16: "bfloat16"}
INDEX_TYPES = {6, 7, 12, 13, 8, 9}
"""int32, int64, uint32, uint64, string, bool: tensors of these types are shapes, indices or masks, not weights."""
_HIGH = bytes(range(0x80, 0x100))


class TensorInfo:
    """One initializer as the file describes it: name, dims, element type, and whether its data lives elsewhere."""

    __slots__ = ("name", "dims", "dtype", "external")

    def __init__(self, name: str, dims: tuple[int, ...], dtype: int, external: bool):
        self.name, self.dims, self.dtype, self.external = name, dims, dtype, external

    @property
    def elements(self) -> int:
        return math.prod(self.dims)


class ModelFile:
    """A model read for analysis: `model` (an onnx.ModelProto holding everything but large initializers' payloads),
    `tensors` (every initializer, by name), the file's size in bytes and a label for messages."""

    def __init__(self, model: Any, tensors: dict[str, TensorInfo], size: int, label: str):
        self.model, self.tensors, self.size, self.label = model, tensors, size, label


# ---------------------------------------------------------------- where a model may come from


def resolve_path(path: Any, roots: list[str]) -> str:
    """The real path of a model file under one of `roots`, or a SpecError naming the path and the roots.

    A relative path is taken under each root in turn. The answer is a regular file: a directory, a missing file,
    a path that leaves the roots (`../`, an absolute path elsewhere, a symlink out) are errors."""
    if not isinstance(path, str) or not path.strip():
        raise SpecError(f"model must be the path of an .onnx file, got {short(path)}")
    if "\x00" in path or len(path) > 4096:
        raise SpecError(f"model path {short(path)} is not a usable path")
    if not roots:
        raise SpecError(
            "this server reads no model files by path (over HTTP it reads only --model-dir directories, and none is "
            "configured): send the file's bytes base64-encoded as model_base64, or start the server with --model-dir DIR"
        )
    real_roots = [os.path.realpath(r) for r in roots]
    shown = ", ".join(real_roots)
    candidates = [path] if os.path.isabs(path) else [os.path.join(r, path) for r in real_roots]

    def inside(p: str) -> bool:
        return any(p == r or p.startswith(r.rstrip(os.sep) + os.sep) for r in real_roots)

    missing = escapes = None
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if not inside(real):
            if inside(os.path.abspath(candidate)) and os.path.lexists(candidate):
                escapes = escapes or candidate  # a symlink in an allowed directory that leads out of them
            continue  # outside: never tell whether it exists
        try:
            st = os.stat(real)
        except OSError:
            missing = missing or real
            continue
        if stat.S_ISDIR(st.st_mode):
            raise SpecError(f"model path {short(path)} is a directory; give the .onnx file inside it")
        if not stat.S_ISREG(st.st_mode):
            raise SpecError(f"model path {short(path)} is not a regular file")
        return real
    if escapes is not None:
        raise SpecError(
            f"model path {short(path)} is a symbolic link that leads outside the directories this server may read ({shown})"
        )
    if missing is not None:
        raise SpecError(f"model file {short(path)} does not exist (looked under {shown})")
    raise SpecError(
        f"model path {short(path)} is outside the directories this server may read ({shown}); "
        "put the file there, start the server with --model-dir DIR, or send its bytes as model_base64"
    )


def _too_big(size: int, max_bytes: int, what: str) -> LimitError:
    return _limit("max_model_bytes", f"{what} is {size:,} bytes ({size / 2**20:,.1f} MiB), more than max_model_bytes={max_bytes:,}")


def read_path(path: Any, roots: list[str], max_bytes: int | None = MAX_MODEL_BYTES) -> ModelFile:
    """Read the model file at `path` (under `roots`); its size is checked before a byte is read."""
    real = resolve_path(path, roots)
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise SpecError(f"model file {short(path)} cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecError(f"model path {short(path)} is not a regular file")
        size = st.st_size
        if max_bytes is not None and size > max_bytes:
            raise _too_big(size, max_bytes, f"model file {short(path)}")
        if size == 0:
            raise SpecError(f"model file {short(path)} is empty (0 bytes): not an ONNX model")
        return scan(FileBytes(fd, size), label=os.path.basename(real))
    finally:
        os.close(fd)


class FileBytes:
    """An open file as the scan reads it, `buf[i]` and `buf[a:b]`, read on demand with os.pread in small chunks: only
    the bytes the scan looks at are read (headers, nodes, small tensors), never a weight's payload. Not a memory map:
    a file that shrinks while it is read is then a 'truncated' error, where a map would kill the process (SIGBUS)."""

    CHUNK = 8192

    def __init__(self, fd: int, size: int):
        self.fd, self.size, self.chunks = fd, size, {}

    def __len__(self) -> int:
        return self.size

    def _chunk(self, i: int) -> bytes:
        chunk = self.chunks.get(i)
        if chunk is None:
            if len(self.chunks) >= 256:
                self.chunks.clear()
            chunk = self.chunks[i] = os.pread(self.fd, self.CHUNK, i * self.CHUNK)
        return chunk

    def __getitem__(self, key):
        if key.__class__ is int:
            chunk = self._chunk(key // self.CHUNK)
            offset = key % self.CHUNK
            if offset >= len(chunk):
                raise _Bad(f"the file ends at byte {key:,} (it is truncated, or shrank while it was read)")
            return chunk[offset]
        start, stop = key.start, key.stop
        if stop - start > 4 * self.CHUNK:
            data = os.pread(self.fd, stop - start, start)
        else:
            first, last = start // self.CHUNK, (stop - 1) // self.CHUNK
            data = b"".join(self._chunk(i) for i in range(first, last + 1))[start - first * self.CHUNK: stop - first * self.CHUNK]
        if len(data) < stop - start:
            raise _Bad(f"the file ends before byte {stop:,} (it is truncated, or shrank while it was read)")
        return data


def read_base64(text: Any, max_bytes: int | None = MAX_MODEL_BYTES) -> ModelFile:
    """Read a model from its bytes, base64-encoded; the decoded size is checked before decoding."""
    if not isinstance(text, str):
        raise SpecError(f"model_base64 must be the file's bytes as base64 text, got {type(text).__name__}")
    body = "".join(text.split())
    if body.startswith("data:") and "," in body[:200]:  # a data: URL
        body = body[body.index(",") + 1:]
    size = len(body) * 3 // 4 - body[-2:].count("=")
    if max_bytes is not None and size > max_bytes:
        raise _too_big(size, max_bytes, "model_base64")
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SpecError(f"model_base64 is not valid base64 ({exc}); encode the .onnx file's bytes, e.g. base64.b64encode(open(path, 'rb').read())") from None
    if not data:
        raise SpecError("model_base64 is empty (0 bytes): not an ONNX model")
    return scan(data, label="model_base64")


# ---------------------------------------------------------------- the protobuf framing


class _Bad(Exception):
    """The bytes are not protobuf framing (or end early); the message says where."""


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _Bad(f"a number runs past the end at byte {pos:,} (the file is truncated)")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Bad(f"a number longer than 10 bytes at byte {pos:,}")


def _fields(buf, pos: int, end: int):
    """(field number, wire type, value, field start, field end) of each field in buf[pos:end]; the value of a
    length-delimited field is its (start, end)."""
    while pos < end:
        start = pos
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Bad(f"field number 0 at byte {start:,}")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            if n > end - pos:
                raise _Bad(f"a field at byte {start:,} claims {n:,} bytes but {end - pos:,} remain (the file is truncated)")
            value = (pos, pos + n)
            pos += n
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if width > end - pos:
                raise _Bad(f"a field at byte {start:,} runs past the end (the file is truncated)")
            value = None
            pos += width
        else:
            raise _Bad(f"wire type {wire} at byte {start:,} (protobuf groups, or not protobuf at all)")
        yield field, wire, value, start, pos


def _header(buf, start: int, end: int) -> tuple[str, list[int], int, int | None, int, bool]:
    """A TensorProto's (name, dims, data type, raw_data bytes or None, typed elements stored, external)."""
    name, dims, dtype, raw, typed, external = "", [], 0, None, 0, False
    for field, wire, value, _, _ in _fields(buf, start, end):
        if field == T_DIMS:
            if wire == 0:
                dims.append(value - (1 << 64) if value >= 1 << 63 else value)
            elif wire == 2:
                p, q = value
                while p < q:
                    v, p = _varint(buf, p, q)
                    dims.append(v - (1 << 64) if v >= 1 << 63 else v)
        elif field == T_DATA_TYPE and wire == 0:
            dtype = value
        elif field == T_NAME and wire == 2:
            name = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
        elif field == T_RAW and wire == 2:
            raw = value[1] - value[0]  # a singular field: the last one wins
        elif field in (T_FLOAT, T_DOUBLE) and wire == 2:
            typed += (value[1] - value[0]) // (4 if field == T_FLOAT else 8)
        elif field in (T_INT32, T_INT64, T_UINT64) and wire == 2:
            for p in range(value[0], value[1], 1 << 20):  # in pieces: a large packed field is never held whole
                chunk = bytes(buf[p:min(p + (1 << 20), value[1])])
                typed += len(chunk.translate(None, _HIGH))  # one varint ends at each byte < 0x80
        elif field in (T_FLOAT, T_INT32, T_INT64, T_DOUBLE, T_UINT64, T_STRING):
            typed += 1
        elif field == T_EXTERNAL:
            external = True
        elif field == T_LOCATION and wire == 0 and value == 1:
            external = True
    return name, dims, dtype, raw, typed, external


def _check_tensor(name: str, dims: list[int], dtype: int, raw: int | None, typed: int, external: bool) -> None:
    """An initializer must store as many bytes (or values) as its dims claim, unless its data is external."""
    from .arithmetic import MAX_EXTENT

    if any(d < 0 or d > MAX_EXTENT for d in dims) or len(dims) > 16:
        raise SpecError(f"initializer {short(name)} has dims {short(dims)}: each must be from 0 to {MAX_EXTENT:,}")
    if external or dtype == 8:
        return
    elements = math.prod(dims)
    bits = BITS.get(dtype)
    kind = TYPE_NAMES.get(dtype, f"data type {dtype}")
    if raw is not None:
        if bits is not None and raw != -(-elements * bits // 8):
            claim = -(-elements * bits // 8)
            raise SpecError(
                f"initializer {short(name)} claims dims {list(dims)} of {kind} ({claim:,} bytes, {claim / 2**20:,.1f} MiB) "
                f"but stores {raw:,} bytes: the file is truncated or corrupt"
            )
        return
    per = 2 if dtype in (14, 15) else 1  # complex numbers store two values each
    if bits is not None and bits >= 8 and typed != elements * per:
        raise SpecError(f"initializer {short(name)} claims dims {list(dims)} ({elements:,} {kind} values) but stores {typed:,}: the file is truncated or corrupt")


def scan(buf, *, label: str = "model") -> ModelFile:
    """The model in `buf` (bytes, or a FileBytes reading a file) without its large initializers' payloads."""
    import onnx

    end = len(buf)
    top: list[bytes] = []  # ModelProto fields other than the graph, as they are
    graph: list[bytes] = []  # GraphProto fields other than large initializers
    tensors: dict[str, TensorInfo] = {}
    graphs = 0
    try:
        for field, wire, value, start, stop in _fields(buf, 0, end):
            if field != MODEL_GRAPH or wire != 2:
                top.append(bytes(buf[start:stop]))
                continue
            graphs += 1
            for gfield, gwire, gvalue, gstart, gstop in _fields(buf, value[0], value[1]):
                if gfield != GRAPH_INITIALIZER or gwire != 2:
                    graph.append(bytes(buf[gstart:gstop]))
                    continue
                name, dims, dtype, raw, typed, external = _header(buf, gvalue[0], gvalue[1])
                _check_tensor(name, dims, dtype, raw, typed, external)
                tensors[name] = TensorInfo(name, tuple(dims), dtype, external)
                if gvalue[1] - gvalue[0] <= SMALL_TENSOR_BYTES:
                    graph.append(bytes(buf[gstart:gstop]))
    except _Bad as exc:
        raise SpecError(f"{label} is not an ONNX model: {exc}") from None
    if not graphs:
        raise SpecError(f"{label} is not an ONNX model: it holds no graph (is it another protobuf message, or not protobuf at all?)")
    body = b"".join(graph)
    light = b"".join(top) + _key(MODEL_GRAPH, 2) + _encode(len(body)) + body
    try:
        model = onnx.load_model_from_string(light)
    except Exception as exc:  # DecodeError and friends, whose text is protobuf's
        raise SpecError(f"{label} is not an ONNX model: protobuf cannot parse it ({str(exc)[:200] or type(exc).__name__})") from None
    return ModelFile(model, tensors, end, label)


def _key(field: int, wire: int) -> bytes:
    return _encode(field << 3 | wire)


def _encode(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)
