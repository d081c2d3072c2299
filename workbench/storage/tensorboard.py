"""TensorBoard event files written by hand (no tensorflow/tensorboard dependency), for people who keep using
TensorBoard: training writes them with `--tensorboard` (under <store>/tensorboard/<run_id>), and
`export_tensorboard` writes any stored run's metrics after the fact."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.storage.runs import RunStore

# The tfevents format, written by hand (no tensorflow/tensorboard dependency): a file of records
#   uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)   (little-endian)
# where each data is a serialized `Event` protobuf: wall_time (1, double), step (2, int64), then either
# file_version (3, string; the first record, "brain.Event:2") or summary (5) = repeated value (1) with
# tag (1, string) and simple_value (2, float).

def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord files use."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negative numbers
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, body: bytes) -> bytes:


    return b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(int(step)) + body


def _scalar_summary(values: Mapping[str, float]) -> bytes:


    summary = b"".join(
        _field_bytes(1, _field_bytes(1, tag.encode()) + b"\x15" + struct.pack("<f", float(value)))
        for tag, value in values.items())
    return _field_bytes(5, summary)


class TensorBoardWriter:
    """Appends scalars to a TensorBoard event file ``<logdir>/events.out.tfevents.<time>.<host>.workbench``.

    ``writer.add_scalars(step, {"episode_return": 1.5}, wall_time=...)``; ``close()`` (or ``with``)."""

    def __init__(self, logdir: str | os.PathLike):
        import socket


        self._struct = struct
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = self.logdir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.workbench"
        self._file = open(self.path, "ab")
        self._write(_event(now, 0, _field_bytes(3, b"brain.Event:2")))

    def _write(self, data: bytes) -> None:
        header = self._struct.pack("<Q", len(data))
        self._file.write(header + self._struct.pack("<I", _masked_crc(header)) + data
                         + self._struct.pack("<I", _masked_crc(data)))

    def add_scalars(self, step: int, values: Mapping[str, float], wall_time: float | None = None) -> None:
        self._write(_event(time.time() if wall_time is None else wall_time, step, _scalar_summary(values)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TensorBoardWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def export_tensorboard(store: RunStore, run_id: str, logdir: str | os.PathLike) -> Path:
    """Write a run's metrics from the store as a TensorBoard event file under ``<logdir>/<run_id>``
    (``tensorboard --logdir LOGDIR`` then shows them). Returns the file's path."""
    rows = store.read_metrics(run_id)
    by_step: dict[tuple[int, float], dict[str, float]] = {}
    for row in rows:  # one Event per logging call (a step and its wall time)
        by_step.setdefault((row.step, row.wall_time), {})[row.name] = row.value
    with TensorBoardWriter(Path(logdir) / run_id) as writer:
        for (step, wall_time), values in by_step.items():
            writer.add_scalars(step, values, wall_time=wall_time)
    return writer.path


def read_tensorboard_scalars(path: str | os.PathLike) -> list[tuple[float, int, dict[str, float]]]:
    """``(wall_time, step, {tag: value})`` of each scalar event in a file written by
    :class:`TensorBoardWriter` (CRCs checked). A minimal reader, for tests and checks."""


    data = Path(path).read_bytes()
    events, pos = [], 0

    def varint(buf: bytes, i: int) -> tuple[int, int]:
        shift = value = 0
        while True:
            b = buf[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value, i

    def fields(buf: bytes):
        i = 0
        while i < len(buf):
            key, i = varint(buf, i)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, i = varint(buf, i)
            elif wire == 1:
                value, i = buf[i:i + 8], i + 8
            elif wire == 5:
                value, i = buf[i:i + 4], i + 4
            elif wire == 2:
                n, i = varint(buf, i)
                value, i = buf[i:i + n], i + n
            else:
                raise ValueError(f"unsupported wire type {wire}")
            yield number, value

    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        if struct.unpack("<I", data[pos + 8:pos + 12])[0] != _masked_crc(header):
            raise ValueError(f"bad length CRC at byte {pos}")
        record = data[pos + 12:pos + 12 + length]
        if struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])[0] != _masked_crc(record):
            raise ValueError(f"bad data CRC at byte {pos}")
        pos += 16 + length
        wall, step, values = 0.0, 0, {}
        for number, value in fields(record):
            if number == 1:
                (wall,) = struct.unpack("<d", value)
            elif number == 2:
                step = value - (1 << 64) if value >= 1 << 63 else value
            elif number == 5:
                for _, item in fields(value):
                    parts = dict(fields(item))
                    values[parts[1].decode()] = struct.unpack("<f", parts[2])[0]
        if values:
            events.append((wall, step, values))
    return events
