"""What NVRTC compiles: a translation unit, a .cu file on disk with an optional
prelude of C++ text before it (a generated cell's struct: cell_codegen.py).

The prelude travels with the unit rather than being found by name at compile
time, so a unit is all a compile needs: a process of a pool (the tuner's, CI's)
that never saw the cell's definition compiles its kernels all the same, and the
cubin cache keys on the prelude's text. Frozen and made of a Path and a str:
hashable (lru caches key on it) and picklable.

Everywhere a unit is taken, a plain Path is too: the unit of that file alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TranslationUnit:
    path: Path
    prelude: str = ""

    @property
    def name(self) -> str:
        """The file's name: what NVRTC calls the program in its messages."""
        return self.path.name

    def text(self) -> str:
        """The source NVRTC compiles: the prelude, then the file. #line directives name each
        part, so that NVRTC's messages point into the prelude or give the file's own lines."""
        source = self.path.read_text()
        if not self.prelude:
            return source
        prelude = self.prelude if self.prelude.endswith("\n") else self.prelude + "\n"
        return f'#line 1 "prelude of {self.name}"\n{prelude}#line 1 "{self.name}"\n{source}'


def as_unit(source: Path | str | TranslationUnit) -> TranslationUnit:
    """`source` as a TranslationUnit: a path is the unit of that file, with no prelude."""
    if isinstance(source, TranslationUnit):
        return source
    return TranslationUnit(Path(source))
