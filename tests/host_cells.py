"""The C++ of generated cell structs run as host code (tests/test_cuda_cells.py): a shim
defines the CUDA keywords away and the intrinsics a cell uses as host functions, the real
csrc/cells/cell.cuh and csrc/math.cuh follow (their FAST = false branches), then the
structs, and a main that runs one cell's forward and backward on each line of stdin.
Values cross as hex floats: exact both ways."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import torch


def host_compiler():
    """A C++17 compiler for host code: g++, c++ or clang++, else nvcc with -x c++."""
    for name in ("g++", "c++", "clang++"):
        found = shutil.which(name)
        if found:
            return [found]
    nvcc = shutil.which("nvcc")
    return [nvcc, "-x", "c++"] if nvcc else None


SHIM = """// Host shim: the CUDA keywords away, the intrinsics a cell uses as host functions
#include <math.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#define __device__
#define __forceinline__ inline
#define asm(...)  // math.cuh's MUFU tanh: only in the FAST branch, never instantiated here
#define __expf expf  // macros: a C library may declare these names itself
#define __logf logf
#define __fdividef(a, b) ((a) / (b))
static inline float rsqrtf(float v) { return 1.0f / sqrtf(v); }
static inline float __int_as_float(int bits) { float v; std::memcpy(&v, &bits, sizeof v); return v; }
#include "cells/cell.cuh"
"""

MAIN = """
// Each line of stdin: x[GX] r[GR] b[GB] s[S] ds[S] (hex floats); each line out: next[S] dx[GX]
// drec[GR] db[GB] dprev[S], the forward and backward with FAST = false
template <class Cell>
int run() {
  using fusedrnn::Gates;
  for (;;) {
    Gates x = {}, r = {}, b = {}, s = {}, ds = {}, next = {}, dx = {}, drec = {}, db = {}, dprev = {};
    float* in[] = {x, r, b, s, ds};
    const int in_counts[] = {Cell::GX, Cell::GR, Cell::GB, Cell::S, Cell::S};
    for (int k = 0; k < 5; ++k)
      for (int g = 0; g < in_counts[k]; ++g)
        if (std::scanf("%a", &in[k][g]) != 1) return 0;
    Cell::template forward<false>(x, r, b, s, next);
    Cell::template backward<false>(x, r, b, s, ds, dx, drec, db, dprev);
    const float* out[] = {next, dx, drec, db, dprev};
    const int out_counts[] = {Cell::S, Cell::GX, Cell::GR, Cell::GB, Cell::S};
    for (int k = 0; k < 5; ++k)
      for (int g = 0; g < out_counts[k]; ++g) std::printf("%a ", out[k][g]);
    std::printf("\\n");
  }
}

int main(int argc, char** argv) {
  const std::string cell = argc > 1 ? argv[1] : "";
"""


def build(preludes, types: dict, directory: Path, include: Path, compiler: list) -> Path:
    """The executable running each struct of `types` ({name: C++ type}) by name, with the `preludes`
    (the structs' text) compiled in; an AssertionError with the compiler's message if it fails."""
    dispatch = "".join(f'  if (cell == "{name}") return run<{struct}>();\n' for name, struct in types.items())
    source = SHIM + "".join(preludes) + MAIN + dispatch + "  return 2;\n}\n"
    (directory / "cells.cpp").write_text(source)
    executable = directory / "cells"
    command = [*compiler, "-std=c++17", "-O1", f"-I{include}", str(directory / "cells.cpp"), "-o", str(executable)]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, f"{' '.join(command)}\n{built.stderr[-6000:]}"
    return executable


def run_host(executable: Path, cell: str, x, rec, b, s, d) -> torch.Tensor:
    """The harness's outputs, [N, S + Gx + Gr + Gb + S] float64 (each an fp32 value)."""
    columns = [x[0, :, 0].T, rec[0, :, 0].T, b[:, 0].T, torch.cat(s).reshape(len(s), -1).T,
               torch.cat(d).reshape(len(d), -1).T]
    rows = torch.cat(columns, dim=1).tolist()
    text = "\n".join(" ".join(float(v).hex() for v in row) for row in rows) + "\n"
    ran = subprocess.run([str(executable), cell], input=text, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    return torch.tensor([[float.fromhex(v) for v in line.split()] for line in ran.stdout.splitlines()],
                        dtype=torch.float64)
