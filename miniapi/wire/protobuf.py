"""Kubernetes protobuf request bodies -> Kubernetes JSON dicts (and back, for tests).

Since client-go 1.32 kubectl's typed clients (``create namespace|configmap|secret|token``,
``auth can-i``, ``auth whoami``, ``certificate approve``) POST/PUT
``Content-Type: application/vnd.kubernetes.protobuf``. The REST layer calls :func:`decode`
and then treats the result exactly like a JSON body; :class:`ProtobufError` becomes a 400 Status.

Envelope (k8s.io/apimachinery/pkg/runtime/serializer/protobuf), ``kubectl create namespace foo``::

    6b 38 73 00                 magic "k8s\\0"
    0a 0f                       Unknown.typeMeta (1), 15 bytes
       0a 02 76 31                  apiVersion (1) = "v1"
       12 09 4e 61 6d 65 ...        kind (2) = "Namespace"
    12 1b                       Unknown.raw (2), 27 bytes = the Namespace message:
       0a 13                        metadata (1), 19 bytes
          0a 03 66 6f 6f                name (1) = "foo"
          12 00 1a 00 ...               generateName "", namespace "", ...  (zero values: dropped)
       12 00                        spec (2) = {}
       1a 02 0a 00                  status (3) = {phase: ""}
    1a 00 22 00                 Unknown.contentEncoding (3) "", contentType (4) ""

decodes to ``{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}}``.

Wire rules: a key is a varint ``field_number << 3 | wire_type``; wire types 0 (varint),
1 (8 bytes), 2 (length-delimited), 5 (4 bytes). Unknown fields are skipped by wire type;
groups (3, 4), truncation, over-long varints, bad magic and unregistered kinds raise.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from miniapi.wire.protobuf_schema import BOOL, BYTES, INT, KINDS, MAP, MESSAGES, STRING, STRINGS, TIME, Field

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_U64 = 1 << 64


class ProtobufError(ValueError):
    """The body is not a protobuf message we can read; the REST layer answers 400 BadRequest."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- wire level -------------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    for i in range(pos, min(pos + 10, len(buf))):
        byte = buf[i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & (_U64 - 1), i + 1
        shift += 7
    if len(buf) - pos < 10:
        raise ProtobufError("unexpected end of data inside a varint")
    raise ProtobufError("varint longer than 10 bytes")


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field_number, wire_type, value)``: an int for wire types 0/1/5, bytes for 2."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("illegal field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise ProtobufError("unexpected end of data inside a fixed-width field")
            yield number, wire, int.from_bytes(buf[pos:pos + size], "little")
            pos += size
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ProtobufError(f"field {number}: length {length} runs past the end of the data")
            yield number, wire, bytes(buf[pos:pos + length])
            pos += length
        else:
            raise ProtobufError(f"field {number}: unsupported wire type {wire}")


def _signed(value: int) -> int:
    return value - _U64 if value >= 1 << 63 else value


# --- decode -----------------------------------------------------------------------------------


def decode(body: bytes) -> dict[str, Any]:
    """Decode a ``k8s\\0``-prefixed ``runtime.Unknown`` into the object's Kubernetes JSON form."""
    if not body.startswith(MAGIC):
        raise ProtobufError("provided data does not appear to be a protobuf message, expected prefix "
                            "[107 56 115 0]")
    api_version = kind = ""
    raw = b""
    for number, wire, value in iter_fields(body[len(MAGIC):]):
        if wire == 2 and number == 1:
            api_version, kind = _type_meta(_as_bytes(value))
        elif wire == 2 and number == 2:
            raw = _as_bytes(value)
    if not kind:
        raise ProtobufError("Object 'Kind' is missing in the protobuf envelope")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise ProtobufError(f'no kind "{kind}" is registered for version "{api_version}"')
    return {"apiVersion": api_version, "kind": kind, **decode_message(raw, message)}


def _type_meta(buf: bytes) -> tuple[str, str]:
    """runtime.TypeMeta {1: apiVersion, 2: kind} (note: meta/v1 TypeMeta numbers them the other way)."""
    found = {1: "", 2: ""}
    for number, wire, value in iter_fields(buf):
        if wire == 2 and number in found:
            found[number] = _as_bytes(value).decode("utf-8", "replace")
    return found[1], found[2]


def _as_bytes(value: int | bytes) -> bytes:
    assert isinstance(value, bytes)
    return value


def decode_message(buf: bytes, message: str) -> dict[str, Any]:
    """Decode one message by its name in MESSAGES; zero-valued non-pointer fields are omitted."""
    schema = MESSAGES[message]
    out: dict[str, Any] = {}
    for number, wire, value in iter_fields(buf):
        field = schema.get(number)
        if field is None:
            continue
        if field.type == MAP:
            key, item = _map_entry(field, wire, value)
            out.setdefault(field.name, {})[key] = item
        elif field.repeated:
            out.setdefault(field.name, []).append(_scalar_or_message(field, wire, value))
        else:
            out[field.name] = _scalar_or_message(field, wire, value)
    for field in schema.values():
        if not field.ptr and not field.repeated and field.type != MAP and _is_zero(out.get(field.name)):
            out.pop(field.name, None)
    return out


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value is False or value == 0 or value == {}


def _expect(field: Field, wire: int, want: int) -> None:
    if wire != want:
        raise ProtobufError(f"field {field.name}: wire type {wire}, expected {want}")


def _scalar_or_message(field: Field, wire: int, value: int | bytes) -> Any:
    if field.type in (BOOL, INT):
        _expect(field, wire, 0)
        assert isinstance(value, int)
        return bool(value) if field.type == BOOL else _signed(value)
    _expect(field, wire, 2)
    assert isinstance(value, bytes)
    if field.type == STRING:
        return value.decode("utf-8", "replace")  # Go keeps the bytes; its JSON encoder replaces
    if field.type == BYTES:
        return base64.b64encode(value).decode("ascii")
    if field.type == TIME:
        return _time(value)
    return decode_message(value, field.type)


def _map_entry(field: Field, wire: int, value: int | bytes) -> tuple[str, Any]:
    _expect(field, wire, 2)
    assert isinstance(value, bytes)
    key, item = "", b""
    for n, w, v in iter_fields(value):
        if n in (1, 2) and w != 2:
            raise ProtobufError(f"field {field.name}: map entry wire type {w}, expected 2")
        if n == 1:
            key = _as_bytes(v).decode("utf-8", "replace")
        elif n == 2:
            item = _as_bytes(v)
    if field.value == BYTES:
        return key, base64.b64encode(item).decode("ascii")
    if field.value == STRINGS:
        entry = Field(field.name, STRING, repeated=True)
        return key, [_scalar_or_message(entry, w, v) for n, w, v in iter_fields(item) if n == 1]
    return key, item.decode("utf-8", "replace")


def _time(buf: bytes) -> str | None:
    """metav1.Time {1: seconds, 2: nanos} -> RFC 3339 at second precision, as metav1.Time's JSON."""
    seconds = nanos = 0
    for n, w, v in iter_fields(buf):
        if n in (1, 2):
            if w != 0:
                raise ProtobufError(f"Time field {n}: wire type {w}, expected 0")
            assert isinstance(v, int)
            seconds, nanos = (_signed(v), nanos) if n == 1 else (seconds, _signed(v))
    if seconds == 0 and nanos == 0:
        return None
    try:
        return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:
        raise ProtobufError(f"Time seconds {seconds} out of range") from None


# --- encode (tests, and answering protobuf if the server ever wants to) ------------------------


def encode(obj: dict[str, Any]) -> bytes:
    """Encode a JSON-form object of a registered kind as ``k8s\\0`` + ``runtime.Unknown``."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise ProtobufError(f'no kind "{kind}" is registered for version "{api_version}"')
    type_meta = _field(1, 2, api_version.encode()) + _field(2, 2, kind.encode())
    unknown = _field(1, 2, type_meta) + _field(2, 2, encode_message(obj, message))
    return MAGIC + unknown + _field(3, 2, b"") + _field(4, 2, b"")


def encode_message(obj: dict[str, Any], message: str) -> bytes:
    out = bytearray()
    for number, field in sorted(MESSAGES[message].items()):
        value = obj.get(field.name)
        if value is None:
            continue
        if field.type == MAP:
            for key in sorted(value):
                entry = _field(1, 2, str(key).encode()) + _encode_map_value(field, value[key])
                out += _field(number, 2, entry)
        elif field.repeated:
            for item in value:
                out += _encode_one(number, field, item)
        else:
            out += _encode_one(number, field, value)
    return bytes(out)


def _encode_map_value(field: Field, value: Any) -> bytes:
    if field.value == STRINGS:
        return _field(2, 2, b"".join(_field(1, 2, str(s).encode()) for s in value))
    return _field(2, 2, _b64(value) if field.value == BYTES else str(value).encode())


def _encode_one(number: int, field: Field, value: Any) -> bytes:
    if field.type in (BOOL, INT):
        return _field(number, 0, int(value) % _U64)
    if field.type == STRING:
        return _field(number, 2, str(value).encode())
    if field.type == BYTES:
        return _field(number, 2, _b64(value))
    if field.type == TIME:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise ProtobufError(f"field {field.name}: {value!r} is not an RFC 3339 time") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        seconds = int((moment - _EPOCH).total_seconds()) % _U64
        return _field(number, 2, _field(1, 0, seconds) + _field(2, 0, 0))
    if not isinstance(value, dict):
        raise ProtobufError(f"field {field.name}: expected an object, got {type(value).__name__}")
    return _field(number, 2, encode_message(value, field.type))


def _b64(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise ProtobufError(f"{value!r} is not valid base64") from None


def _put_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, value: int | bytes) -> bytes:
    key = _put_varint(number << 3 | wire)
    if isinstance(value, int):
        return key + _put_varint(value)
    return key + _put_varint(len(value)) + value
