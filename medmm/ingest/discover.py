"""Walk an archive: every path under it once, with size and mtime; symlinks never lead out of it.

:func:`walk_archive` lists regular files as :class:`Entry` (to be sniffed and read by tasks) and turns
everything else (symbolic links, special files, unreadable folders) into final manifest rows at once.
:func:`pair_units` groups a ``.hdr`` with its ``.img`` so the two are always processed together.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "a.nii").write_bytes(b"x")
>>> entries, rows = walk_archive(root)
>>> [e.rel for e in entries], rows
(['a.nii'], [])
"""

from __future__ import annotations

import os
import stat
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from medmm.errors import reason_of
from medmm.ingest.errors import ArchiveLinkError, UnreadableInputError
from medmm.ingest.records import IngestManifestRow
from medmm.records import Status

__all__ = [
    "Entry",
    "PackedEntries",
    "companion_candidates",
    "iter_archive",
    "pack_entries",
    "pair_units",
    "printable_name",
    "unpack_entries",
    "walk_archive",
]


@dataclass(frozen=True, slots=True)
class Entry:
    """One regular file of the archive: relative POSIX path, size and modification time."""

    rel: str
    size: int
    mtime_ns: int


#: A batch of entries as three objects: NUL-joined paths (NUL never occurs in a path), sizes, mtimes.
PackedEntries = tuple[str, bytes, bytes]


def pack_entries(entries: list[Entry]) -> PackedEntries:
    """A compact, cheap-to-pickle form of a batch (a task's arguments stay in the scheduler's memory).

    >>> unpack_entries(pack_entries([Entry("a b/c.dcm", 3, 7), Entry("d", 0, 1)]))
    [Entry(rel='a b/c.dcm', size=3, mtime_ns=7), Entry(rel='d', size=0, mtime_ns=1)]
    """
    sizes = array("q", (e.size for e in entries)).tobytes()
    mtimes = array("q", (e.mtime_ns for e in entries)).tobytes()
    return "\0".join(e.rel for e in entries), sizes, mtimes


def unpack_entries(packed: PackedEntries) -> list[Entry]:
    """The entries of :func:`pack_entries`, in order.

    >>> unpack_entries(pack_entries([]))
    []
    """
    rels, sizes, mtimes = packed
    if not sizes:
        return []
    s, m = array("q"), array("q")
    s.frombytes(sizes)
    m.frombytes(mtimes)
    return [Entry(r, a, b) for r, a, b in zip(rels.split("\0"), s, m, strict=True)]


def _row(rel: str, st: os.stat_result | None, fmt: str, status: Status, reason: str) -> IngestManifestRow:
    return IngestManifestRow(
        path=rel,
        size=None if st is None else st.st_size,
        mtime_ns=None if st is None else st.st_mtime_ns,
        format=fmt,
        status=status,
        reason=reason,
    )


def printable_name(rel: str) -> str:
    r"""``rel`` with the bytes of a non-UTF-8 file name written as ``\xNN`` (storable in tables).

    >>> printable_name("a/r\udce9sum\udce9.dcm")
    'a/r\\xe9sum\\xe9.dcm'
    """
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _undecodable_row(rel: str, st: os.stat_result) -> IngestManifestRow:
    shown = printable_name(rel)
    err = UnreadableInputError(
        shown,
        "file name (or a folder name in its path) is not valid UTF-8 (bytes shown as \\xNN)",
        "rename it to UTF-8 (e.g. `convmv -f latin1 -t utf8 -r --notest FOLDER`) and run again",
    )
    return _row(shown, st, "unknown", Status.quarantined, reason_of(err))


def _link_row(root: Path, real_root: Path, full: Path, rel: str) -> IngestManifestRow:
    st = os.lstat(full)
    try:
        target = full.resolve(strict=True)
    except (OSError, RuntimeError):
        err = ArchiveLinkError(
            rel, "symbolic link whose target does not exist", "remove the link or restore its target"
        )
        return _row(rel, st, "symlink", Status.quarantined, reason_of(err))
    if not target.is_relative_to(real_root):
        err = ArchiveLinkError(
            rel,
            "symbolic link pointing outside the archive (not followed)",
            "copy the target into the archive if it belongs to it",
        )
        return _row(rel, st, "symlink", Status.quarantined, reason_of(err))
    inside = target.relative_to(real_root).as_posix()
    what = "folder" if target.is_dir() else "file"
    return _row(
        rel,
        st,
        "symlink",
        Status.duplicate,
        f"symbolic link to the {what} {inside!r}, listed under that path",
    )


def walk_archive(root: Path) -> tuple[list[Entry], list[IngestManifestRow]]:
    """List every path under ``root`` (recursively, no links followed).

    Parameters
    ----------
    root
        The archive folder.

    Returns
    -------
    entries, rows
        Regular files to process (sorted by path), and final manifest rows for links, special files
        and unreadable folders (sorted by path).

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "sub").mkdir(); _ = (root / "sub" / "x.dcm").write_bytes(b"1")
    >>> [e.rel for e in walk_archive(root)[0]]
    ['sub/x.dcm']
    """
    rows: list[IngestManifestRow] = []
    entries = list(iter_archive(root, rows))
    rows.sort(key=lambda r: r.path)
    return entries, rows


def iter_archive(
    root: Path, rows: list[IngestManifestRow], pairs: dict[str, str] | None = None
) -> Iterator[Entry]:
    """The regular files under ``root`` one at a time, **in path order**, holding one folder's listing
    at a time (no list of the whole archive, no path object per file).

    Folders are walked depth first with their children sorted by name, a sub-folder's name taken with a
    trailing ``/``: that yields exactly the order of ``sorted()`` on the relative paths. Links, special
    files and unreadable folders become final rows appended to ``rows`` (not in order); the
    ``.img``/``.hdr`` pairs of each folder (:func:`pair_units`) are added to ``pairs`` before any of the
    folder's files is yielded.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "a").mkdir(); _ = (root / "a" / "x").write_bytes(b"1"); _ = (root / "a.b").write_bytes(b"")
    >>> [e.rel for e in iter_archive(root, [])]
    ['a.b', 'a/x']
    """
    root = Path(root)
    real_root = root.resolve()
    yield from _walk_folder(root, real_root, os.fspath(root), "", rows, pairs)


def _walk_folder(
    root: Path,
    real_root: Path,
    top: str,
    prefix: str,
    rows: list[IngestManifestRow],
    pairs: dict[str, str] | None,
) -> Iterator[Entry]:
    try:
        with os.scandir(top) as it:
            listing = list(it)
    except OSError as exc:
        rel = printable_name(prefix[:-1] or ".")
        problem = f"folder cannot be listed ({exc.strerror})"
        err = UnreadableInputError(rel, problem, "grant read access to it")
        rows.append(_row(rel, None, "folder", Status.quarantined, reason_of(err)))
        return
    children: list[tuple[str, Entry | None]] = []  # (sort key, entry), entry None: a sub-folder
    for item in listing:
        name, rel = item.name, prefix + item.name
        try:
            is_dir = item.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            children.append((name + "/", None))
            continue
        try:
            st = item.stat(follow_symlinks=False)
        except OSError as exc:
            err = UnreadableInputError(rel, f"cannot be inspected ({exc.strerror})", "check the file system")
            rows.append(_row(rel, None, "unknown", Status.quarantined, reason_of(err)))
            continue
        if not _utf8(rel):
            rows.append(_undecodable_row(rel, st))
        elif stat.S_ISLNK(st.st_mode):
            rows.append(_link_row(root, real_root, Path(item.path), rel))
        elif stat.S_ISREG(st.st_mode):
            children.append((name, Entry(rel, st.st_size, st.st_mtime_ns)))
        else:
            err = UnreadableInputError(rel, "not a regular file (device, pipe or socket)", "remove it")
            rows.append(_row(rel, st, "special", Status.quarantined, reason_of(err)))
    del listing
    children.sort(key=lambda c: c[0])
    if pairs is not None:
        pairs.update(pair_units(e.rel for _, e in children if e is not None))
    for key, entry in children:
        if entry is not None:
            yield entry
        else:
            yield from _walk_folder(root, real_root, top + os.sep + key[:-1], prefix + key, rows, pairs)


def _utf8(rel: str) -> bool:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes of a non-UTF-8 name
        return False
    return True


_HDR_TO_IMG = {".hdr": ".img", ".hdr.gz": ".img.gz"}


def companion_candidates(rel: str) -> list[str]:
    """Possible ``.img`` names for a ``.hdr`` (same case, lower and upper case extension).

    >>> companion_candidates("a/b.hdr")
    ['a/b.img', 'a/b.IMG']
    >>> companion_candidates("a/b.HDR.gz")
    ['a/b.img.gz', 'a/b.IMG.gz']
    """
    lower = rel.lower()
    for hdr, img in _HDR_TO_IMG.items():
        if lower.endswith(hdr):
            stem = rel[: -len(hdr)]
            return [stem + img, stem + img.upper().replace(".GZ", ".gz")]
    return []


def pair_units(rels: Iterable[str]) -> dict[str, str]:
    """Map each ``.img`` that has a sibling ``.hdr`` (by name) to that ``.hdr``.

    Only names are used here; whether the ``.hdr`` really is an ANALYZE/NIfTI header is checked after
    sniffing.

    >>> pair_units(["x/a.hdr", "x/a.img", "x/b.img"])
    {'x/a.img': 'x/a.hdr'}
    """
    present = set(rels)
    out: dict[str, str] = {}
    for rel in sorted(present):
        for img in companion_candidates(rel):
            if img in present and img not in out:
                out[img] = rel
                break
    return out
