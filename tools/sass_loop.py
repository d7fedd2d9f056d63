"""What does a cuda_fused kernel's time loop cost with resets, in SASS? For each DHxNH
and direction, the planned kernel (LSTM bf16, B, T=1024) without and with resets
(plan.with_resets), compiled for sm_90 by the NVRTC in use (no GPU needed; the GPU
machine's NVRTC may schedule differently: run it under that version for its SASS):
the time loop's instruction count (the longest back edge whose body holds an mma), how
many lie outside the widest forward branch free of mma and barriers (with resets, about
what a step without a restart issues: the restart is that branch), the opcodes whose
counts differ, and every global load in the loop with the
instructions in the loop that wait on its scoreboard. A global load kept in flight for
a step is only free if nothing before its consumer waits on its scoreboard: the
control bits of each instruction (stall, write and read scoreboard, wait mask; Volta
and later) are decoded from `nvdisasm -hex`. docs/perf-notes.md (2026-12-07) has the
two faults this found.

  python tools/sass_loop.py [DHxNH ...] [--batch B] [--direction forward|backward|both]
"""
import argparse
import collections
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from fusedrnn.backends.cuda.fused.plan import plan
from fusedrnn.backends.cuda.runtime.compile import compile_kernel, nvrtc_version
from fusedrnn.backends.cuda.runtime.device import H100_SXM
from fusedrnn.cells import get_cell
from fusedrnn.problem import Problem


@dataclass(frozen=True)
class Instruction:
    address: int
    text: str
    write_barrier: int | None  # the scoreboard a variable-latency result sets
    wait_mask: int  # the scoreboards this instruction waits on

    @property
    def opcode(self) -> str:
        return re.sub(r"^@!?U?P\w+\s+", "", self.text).split()[0]


def nvdisasm() -> str:
    """nvdisasm from the CUDA toolkit, else the one Triton bundles."""
    found = shutil.which("nvdisasm")
    if found:
        return found
    import triton
    bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "nvdisasm"
    if not bundled.exists():
        raise SystemExit("nvdisasm: not on PATH and not bundled with Triton")
    return str(bundled)


def disassemble(cubin: bytes) -> tuple[list[Instruction], dict[str, int]]:
    """The instructions with their control bits, and each label's address."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        lines = subprocess.run([nvdisasm(), "-hex", "-c", f.name], capture_output=True, text=True,
                               check=True).stdout.splitlines()
    code, labels, pending = [], {}, []
    for i, line in enumerate(lines):
        label = re.match(r"^\s*\.(L_x_\d+):", line)
        if label:
            pending.append(label.group(1))
            continue
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s*(.*?)\s*;\s*/\* 0x[0-9a-f]+ \*/", line)
        if not m:
            continue
        high = int(re.search(r"/\* (0x[0-9a-f]+) \*/", lines[i + 1]).group(1), 16)  # control bits: bits 105-125
        write = (high >> 46) & 7
        address = int(m.group(1), 16)
        code.append(Instruction(address, m.group(2), None if write == 7 else write, (high >> 52) & 0x3F))
        for name in pending:
            labels[name] = address
        pending = []
    return code, labels


def time_loop(code: list[Instruction], labels: dict[str, int]) -> list[Instruction]:
    """The body of the backward branch that holds the most mma instructions (HMMA, HGMMA) and,
    of those, starts first and ends first: the retry paths of an mbarrier wait, placed after
    the loop, branch back into its middle, and their span holds the same mma."""
    best, best_key = [], None
    for ins in code:
        target = re.search(r"BRA .*?(L_x_\d+)", ins.text)
        if target and labels.get(target.group(1), ins.address) < ins.address:
            body = [x for x in code if labels[target.group(1)] <= x.address <= ins.address]
            key = (-sum("MMA" in x.opcode for x in body), body[0].address, ins.address)
            if key[0] < 0 and (best_key is None or key < best_key):
                best, best_key = body, key
    return best


def global_load_waits(loop: list[Instruction]) -> list[str]:
    """Each global load of the loop and the loop's instructions that wait on its scoreboard after it."""
    out = []
    for k, ins in enumerate(loop):
        if not re.match(r"LDG(\.|$)", ins.opcode) or ins.write_barrier is None:  # not LDGSTS, LDGDEPBAR
            continue
        board = ins.write_barrier
        waiting = [x for x in loop[k + 1:] if x.wait_mask >> board & 1]
        first = f"{waiting[0].address:05x} {waiting[0].text}" if waiting else "none in the loop"
        out.append(f"  {ins.address:05x} {ins.text} (scoreboard {board}): first wait {first}")
    return out


def compiled_loop(DH: int, NH: int, B: int, direction: str, resets: bool):
    problem = Problem(get_cell("lstm"), B, 1024, NH, DH, torch.bfloat16, torch.device("cuda"), False, True,
                      has_resets=resets)
    chosen = plan(problem, H100_SXM, direction)
    compiled = compile_kernel(chosen.name_expression, H100_SXM.arch, chosen.config.source)
    code, labels = disassemble(compiled.cubin)
    return chosen, compiled.registers, time_loop(code, labels), labels


def widest_skip(loop: list[Instruction], labels: dict[str, int]) -> int:
    """How many of the loop's instructions the widest forward conditional branch without an mma or
    barrier skips: with resets, the restart a step without one jumps over (an estimate of the cold
    code; the rest is what every step issues)."""
    first, last, widest = loop[0].address, loop[-1].address, 0
    for k, ins in enumerate(loop):
        target = re.search(r"^@.*BRA .*?(L_x_\d+)", ins.text)
        if target and first <= labels.get(target.group(1), -1) <= last and labels[target.group(1)] > ins.address:
            body = [x for x in loop[k + 1:] if x.address < labels[target.group(1)]]
            if not any("MMA" in x.opcode or x.opcode.startswith("BAR") for x in body):
                widest = max(widest, len(body))
    return widest


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("splits", nargs="*", default=["64x12", "768x1"], metavar="DHxNH")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--direction", default="both", choices=["forward", "backward", "both"])
    args = parser.parse_args()
    print(f"NVRTC {nvrtc_version()}, sm_90 (H100 preset's plans), LSTM bf16, B={args.batch}, T=1024")
    for split in args.splits:
        DH, NH = map(int, split.split("x"))
        for direction in ("forward", "backward") if args.direction == "both" else (args.direction,):
            loops = {}
            for resets in (False, True):
                chosen, registers, loop, labels = compiled_loop(DH, NH, args.batch, direction, resets)
                loops[resets] = loop
                skipped = widest_skip(loop, labels)
                print(f"{split} {direction} {'with' if resets else 'without'} resets: {chosen.strategy}, "
                      f"{registers} registers, time loop {len(loop)} instructions, "
                      f"{len(loop) - skipped} outside its widest skip ({skipped})")
                for line in global_load_waits(loop):
                    print(line)
            plain, with_resets = (collections.Counter(x.opcode for x in loops[r]) for r in (False, True))
            changed = [f"{op} {plain[op]}->{with_resets[op]}" for op in sorted(plain | with_resets)
                       if plain[op] != with_resets[op]]
            print(f"  opcodes that differ: {', '.join(changed) or 'none'}")


if __name__ == "__main__":
    main()
