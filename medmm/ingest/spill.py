"""The archive's walk on disk: entries written in path order, read back chunk by chunk.

The driver never holds one object per input file: :class:`EntrySpill` appends the walk's entries to a
private file in packed chunks (:func:`~medmm.ingest.discover.pack_entries`: paths joined, sizes and
mtimes as int64 arrays), and the scan batches, the resume checks and the final manifest merge read them
back in order, one chunk at a time. The file lies under ``RUN_DIR/.parts/walk/`` and goes with the
journal parts when the run finishes.

>>> import tempfile, pathlib
>>> from medmm.ingest.discover import Entry
>>> spill = EntrySpill(pathlib.Path(tempfile.mkdtemp()) / "walk" / "entries.pkl", chunk=2)
>>> for e in [Entry("a", 1, 2), Entry("b", 3, 4), Entry("c", 5, 6)]:
...     spill.add(e)
>>> spill.close()
>>> len(spill), [e.rel for e in spill.entries()], list(spill.rels())
(3, ['a', 'b', 'c'], ['a', 'b', 'c'])
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from medmm.ingest.discover import Entry, PackedEntries, pack_entries, unpack_entries

__all__ = ["WALK_SUBDIR", "EntrySpill"]

#: Where the walk is spilled, relative to the run directory (inside the journal's parts folder).
WALK_SUBDIR = ".parts/walk"

#: Entries per chunk written or read at once (~100 KB of paths in memory).
SPILL_CHUNK = 2048


class EntrySpill:
    """Append-only file of walk entries in the order added (path order for a walk), re-readable.

    Parameters
    ----------
    path
        The file (created with mode 0600, its folder 0700; an older file there is replaced).
    chunk
        Entries buffered before a chunk is written.
    """

    def __init__(self, path: Path, chunk: int = SPILL_CHUNK) -> None:
        self.path = Path(path)
        self.chunk = chunk
        self._buffer: list[Entry] = []
        self._n = 0
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._fh: IO[bytes] | None = os.fdopen(fd, "wb")

    def __len__(self) -> int:
        return self._n

    def add(self, entry: Entry) -> None:
        """Append one entry (written with its chunk)."""
        self._buffer.append(entry)
        self._n += 1
        if len(self._buffer) >= self.chunk:
            self._write()

    def _write(self) -> None:
        if self._buffer and self._fh is not None:
            pickle.dump(pack_entries(self._buffer), self._fh, protocol=pickle.HIGHEST_PROTOCOL)
        self._buffer = []

    def close(self) -> None:
        """Write the last chunk; the spill can be read from now on."""
        self._write()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def chunks(self) -> Iterator[PackedEntries]:
        """The packed chunks in order (the spill must be closed)."""
        if self._fh is not None:
            raise RuntimeError("close() the spill before reading it")
        if not self._n:
            return
        with self.path.open("rb") as fh:
            while True:
                try:
                    chunk: PackedEntries = pickle.load(fh)  # our own private file (0600)
                except EOFError:
                    return
                yield chunk

    def entries(self) -> Iterator[Entry]:
        """Every entry in order, one chunk in memory at a time."""
        for chunk in self.chunks():
            yield from unpack_entries(chunk)

    def rels(self) -> Iterator[str]:
        """Every entry's relative path in order."""
        for rels, sizes, _ in self.chunks():
            if sizes:
                yield from rels.split("\0")
