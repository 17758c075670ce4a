"""Data that need not fit in memory: sources read block by block, and what one pass computes per block.

EM needs, per iteration, only sums over the rows (:func:`tinygmm.fit.em.em_sums`), so the data
can flow through in blocks: each block's statistics are computed where the block is, and the
sums added up in block order (the same order every pass, so a fit is repeatable).

- :class:`ChunkedArray`: a NumPy array or ``np.memmap`` read ``chunk_rows`` rows at a time; a
  memmap's pages are handed back to the kernel after each chunk, so even the resident size of
  the process stays about one chunk.
- :class:`ParquetData`: a Parquet file read one row group at a time (pyarrow).
- :class:`DaskSource`: a Dask array; each block's statistics are a task run where the block lives
  (a ``dask.distributed`` cluster when a ``Client`` is active, Dask's default scheduler otherwise).

Nothing here imports Dask or pyarrow until such a source is used. Every block goes through a
:class:`Prep` first: rows with a missing value dropped (or refused) and the scaler applied. What
one pass computes per block is in :mod:`tinygmm.fit.passes`.
"""
from __future__ import annotations

import mmap
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np


# Bytes of raw rows per block of a ChunkedArray (a few times that while a block is worked on).
CHUNK_BYTES = 16 << 20


@dataclass(frozen=True)
class Prep:
    """What each block goes through before the maths: rows with a NaN dropped (else refused), then
    ``(x - shift) / scale`` when a scaler is set. Infinities are always an error."""

    shift: np.ndarray | None = None
    scale: np.ndarray | None = None
    drop_missing: bool = False

    def columns(self, block: Any, offset: int = 0, refuse: bool = True, center: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """(complete rows feature-major as float64 (D, n), made contiguous in one copy and then worked on
        in place, minus ``center`` when given; row numbers with a missing value, offset added).

        A missing value raises unless ``drop_missing``, or ``refuse`` is off (the first pass counts
        them all, for an error that lists them)."""
        X = np.asarray(block)
        if X.ndim != 2:
            raise ValueError(f"Expected 2D array, got {X.ndim}D array instead")
        xt = np.array(X.T, dtype=np.float64, order="C")  # a Parquet block is column-major: a plain copy
        missing = np.empty(0, dtype=np.int64)
        if not np.isfinite(np.sum(xt)):  # one reduction; a NaN or an infinity shows in the sum
            finite = np.isfinite(xt)
            if np.isinf(xt).any():
                raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
            bad = ~finite.all(axis=0)
            missing = np.flatnonzero(bad) + offset
            if refuse and not self.drop_missing:
                raise ValueError(f"Input X contains NaN (row {missing[0]}).")
            xt = np.ascontiguousarray(xt[:, ~bad])
        if self.shift is not None:
            xt -= self.shift[:, None]
        if self.scale is not None:
            xt /= self.scale[:, None]
        if center is not None:
            xt -= center[:, None]
        return xt, missing


class Source:
    """Rows of D features, read block by block in a fixed order. Subclasses say where the blocks are."""

    prep: Prep = Prep()

    @property
    def n_features(self) -> int:
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:
        """The data's float type (float32 stays float32 in the fitted attributes, as for arrays)."""
        return np.dtype(np.float64)

    def block_rows(self) -> list[int]:
        """Rows per block as stored (before any are dropped)."""
        raise NotImplementedError

    def map(self, fn: Callable[..., Any], *args: Any, per_block: Sequence[Any] | None = None) -> list[Any]:
        """``[fn(block, self.prep, *args[, per_block[i]]) for each block i]``, in block order."""
        raise NotImplementedError

    def with_prep(self, prep: Prep) -> Source:
        """The same data through another Prep (a scaler, dropping rows with missing values)."""
        return replace(self, prep=prep)  # type: ignore[type-var]


def _call(fn: Callable[..., Any], block: Any, prep: Prep, args: tuple) -> Any:
    return fn(block, prep, *args)


def _block_args(args: tuple, per_block: Sequence[Any] | None, i: int) -> tuple:
    return args if per_block is None else (*args, per_block[i])


def check_dtype(X: Any) -> None:
    """Refuse what the in-memory fit refuses, with its message: a block would otherwise be cast to
    float64 silently (complex numbers losing their imaginary part, with only a ComplexWarning)."""
    kind = np.dtype(X.dtype).kind
    if kind == "c":
        raise ValueError(f"Complex data not supported\n{X}\n")  # scikit-learn's words
    if kind not in "biufO":  # bool, integers and floats are numbers; objects are converted as in memory
        raise ValueError(f"dtype {X.dtype} is not numeric: convert the data to numbers first")


class _ArraySource(Source):
    """A source over an array-like ``X`` of rows (NumPy or Dask)."""

    X: Any

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.X.dtype == np.float32 else np.dtype(np.float64)


@dataclass(frozen=True)
class ChunkedArray(_ArraySource):
    """An array read ``chunk_rows`` rows at a time, in this process (default: about CHUNK_BYTES).

    Made for ``np.memmap``: ``GaussianMixture.fit`` reads a memmap this way by itself.
    """

    X: Any
    chunk_rows: int | None = None
    prep: Prep = Prep()

    def __post_init__(self) -> None:
        if getattr(self.X, "ndim", None) != 2:
            raise ValueError(f"Expected 2D array, got {getattr(self.X, 'ndim', '?')}D array instead")
        check_dtype(self.X)

    def _rows(self) -> int:
        if self.chunk_rows:
            return int(self.chunk_rows)
        return max(1024, CHUNK_BYTES // max(1, self.X.shape[1] * self.X.dtype.itemsize))

    def block_rows(self) -> list[int]:
        n, rows = self.X.shape[0], self._rows()
        return [min(rows, n - s) for s in range(0, n, rows)]

    def map(self, fn: Callable[..., Any], *args: Any, per_block: Sequence[Any] | None = None) -> list[Any]:
        rows = self._rows()
        out = []
        for i, s in enumerate(range(0, self.X.shape[0], rows)):
            out.append(_call(fn, self.X[s:s + rows], self.prep, _block_args(args, per_block, i)))
            _release_pages(self.X, s, min(s + rows, self.X.shape[0]))
        return out


def _release_pages(X: Any, start: int, stop: int) -> None:
    """Hand the pages of rows start:stop of a read-only or shared memmap back to the kernel.

    They stay in the page cache (a later pass reads them from there), but no longer count in this
    process's resident memory: without this, a pass over a 1 GB memmap leaves 1 GB resident.
    Copy-on-write maps (mode 'c') may hold changes the mapping alone keeps: left alone.
    """
    mm = getattr(X, "_mmap", None)
    if not isinstance(mm, mmap.mmap) or getattr(X, "mode", "c") == "c" or not X.flags.c_contiguous:
        return
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    first = X.ctypes.data + start * X.strides[0] - base
    last = X.ctypes.data + stop * X.strides[0] - base
    page = mmap.PAGESIZE
    first -= first % page
    if last > first:
        try:
            mm.madvise(mmap.MADV_DONTNEED, first, min(last - first, len(mm) - first))
        except (OSError, ValueError, AttributeError):  # no madvise here: only the resident size grows
            pass


# -- Parquet ----------------------------------------------------------------------------------


def _parquet_file(path: str | os.PathLike) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading Parquet needs pyarrow: pip install 'tinygmm[dask]'") from None
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError: say which file
        raise ValueError(f"{path} is not a Parquet file that can be read ({e})") from None


def parquet_columns(path: str | os.PathLike, schema: Any,
                    columns: Sequence[str | int] | None = None) -> tuple[list[str], list[str]]:
    """(the columns to read, the non-numeric columns left out) of the file at ``path`` with the
    Arrow ``schema``. ``columns``: names or 0-based indices (default: every integer, floating or
    decimal column)."""
    import pyarrow as pa

    names = list(schema.names)

    def numeric(t: Any) -> bool:
        return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t)

    if columns is None:
        chosen = [n for n in names if numeric(schema.field(n).type)]
        return chosen, [n for n in names if n not in chosen]
    chosen = []
    for c in columns:
        # an index counts from 0; a negative one is refused, not wrapped around to the last columns
        by_index = (isinstance(c, int) and not isinstance(c, bool)) or (str(c).isdigit() and c not in names)
        if by_index and 0 <= int(c) < len(names):
            name = names[int(c)]
        elif not by_index and c in names:
            name = str(c)
        else:
            raise ValueError(f"{path}: no column {c!r}; available: "
                             + ", ".join(f"{j}: {n!r}" for j, n in enumerate(names)))
        if not numeric(schema.field(name).type):
            raise ValueError(f"{path}: column {name!r} holds {schema.field(name).type}, not numbers")
        if name in chosen:
            raise ValueError(f"{path}: column {name!r} is selected twice")
        chosen.append(name)
    return chosen, []


# Parquet files each thread keeps open (Dask may run blocks in threads): opening parses the footer,
# as long as reading a 16 MB row group, so the files a fit reads again every pass stay open; but
# only a few, since a process fitting file after file would otherwise hold a descriptor for each.
OPEN_FILES = 4
_open_files = threading.local()  # .files: path -> (its stat, ParquetFile), least recently used first


def _cached_parquet_file(path: str) -> Any:
    """The ParquetFile of ``path``, opened once per thread, again when the file changed; the least
    recently used beyond OPEN_FILES, and a changed file's old handle, are closed."""
    files: dict[str, tuple[tuple[int, int, int], Any]] | None = getattr(_open_files, "files", None)
    if files is None:
        files = _open_files.files = {}
    st = os.stat(path)
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    hit = files.pop(path, None)
    if hit is not None and hit[0] != key:
        hit[1].close()
        hit = None
    if hit is None:
        hit = (key, _parquet_file(path))
    files[path] = hit  # re-inserted: dicts keep insertion order, so the first entry is the stalest
    while len(files) > OPEN_FILES:
        files.pop(next(iter(files)))[1].close()
    return hit[1]


def read_row_group(path: str, index: int, columns: Sequence[str], dtype: Any = np.float64) -> np.ndarray:
    """Row group ``index`` of a Parquet file as ``dtype`` (n, D), nulls as NaN. Column-major (a
    transposed (D, n) array), as Parquet stores it: the block's feature-major copy is a plain copy."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _cached_parquet_file(path).read_row_group(index, columns=list(columns))
    out = np.empty((len(columns), table.num_rows), dtype=dtype)
    target = pa.from_numpy_dtype(out.dtype)
    for j, name in enumerate(columns):
        col = table.column(name)
        if col.type != target:
            col = pc.cast(col, target)
        out[j] = col.to_numpy() if col.null_count == 0 else pc.fill_null(col, np.nan).to_numpy()
    return out.T


def read_complete_rows(path: str, index: int, columns: Sequence[str], dtype: Any = np.float64) -> np.ndarray:
    """:func:`read_row_group` without the rows that have a missing value (still column-major)."""
    rows = read_row_group(path, index, columns, dtype).T
    return rows[:, ~np.isnan(rows).any(axis=0)].T


@dataclass(frozen=True)
class ParquetData(Source):
    """A Parquet file read one row group at a time (memory: about one row group).

    ``columns``: names or 0-based indices (default: every numeric column). Nulls and NaN are
    missing values: an error unless ``drop_missing``.
    """

    path: str
    columns: Sequence[str | int] | None = None
    drop_missing: bool = False
    prep: Prep = field(default=Prep())
    names: tuple[str, ...] = field(init=False)
    skipped: tuple[str, ...] = field(init=False)
    group_rows: tuple[int, ...] = field(init=False)
    float32: bool = field(init=False)  # every column read is float32: read, and fitted, as float32

    def __post_init__(self) -> None:
        import pyarrow as pa

        object.__setattr__(self, "path", str(Path(self.path)))
        f = _cached_parquet_file(self.path)  # its footer read once: the copies with_prep makes find it here
        meta, schema = f.metadata, f.schema_arrow
        names, skipped = parquet_columns(self.path, schema, self.columns)
        if not names:
            raise ValueError(f"{self.path}: no column holds numbers")
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "skipped", tuple(skipped))
        object.__setattr__(self, "float32", all(schema.field(n).type == pa.float32() for n in names))
        object.__setattr__(self, "group_rows", tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups)))
        if self.drop_missing and not self.prep.drop_missing:
            object.__setattr__(self, "prep", replace(self.prep, drop_missing=True))

    @property
    def n_features(self) -> int:
        return len(self.names)

    def block_rows(self) -> list[int]:
        return list(self.group_rows)

    @property
    def dtype(self) -> np.dtype:
        """float32 when every column read is float32 (as an array of them is), float64 otherwise."""
        return np.dtype(np.float32 if self.float32 else np.float64)

    def map(self, fn: Callable[..., Any], *args: Any, per_block: Sequence[Any] | None = None) -> list[Any]:
        return [_call(fn, read_row_group(self.path, i, self.names, self.dtype), self.prep, _block_args(args, per_block, i))
                for i in range(len(self.group_rows))]

    def to_dask(self) -> Any:
        """A Dask array of the file, one block per row group, each read by the worker that uses it.

        With ``drop_missing`` each block leaves out its rows with a missing value, as a fit of this
        source does (and predict then has a row for each complete row): the blocks' lengths are then
        unknown until they are read, and a fit learns them in one more pass."""
        import dask
        import dask.array as da

        drop = self.prep.drop_missing
        read = dask.delayed(read_complete_rows if drop else read_row_group)
        blocks = [da.from_delayed(read(self.path, i, self.names, self.dtype),
                                  shape=(np.nan if drop else n, len(self.names)), dtype=self.dtype)
                  for i, n in enumerate(self.group_rows)]
        return da.concatenate(blocks, axis=0)


# -- Dask -------------------------------------------------------------------------------------


def is_dask_array(X: Any) -> bool:
    """Whether X is a Dask array (without importing Dask)."""
    return type(X).__module__.startswith("dask.array") and hasattr(X, "chunks") and hasattr(X, "to_delayed")


@dataclass(frozen=True)
class DaskSource(_ArraySource):
    """A Dask array: each block's statistics are a task run where the block lives (the active
    ``dask.distributed.Client``, else Dask's default scheduler); only the sums come back.

    Persist the array first (``X.persist()``) when the cluster's memory holds it: otherwise every
    pass computes the blocks again from their source (which is what data larger than it need).
    """

    X: Any
    prep: Prep = Prep()

    def __post_init__(self) -> None:
        X = self.X
        if X.ndim != 2:
            raise ValueError(f"Expected 2D array, got {X.ndim}D array instead")
        check_dtype(X)
        if any(np.isnan(c) for c in X.chunks[0]):
            X = X.compute_chunk_sizes()  # unknown block lengths (after filtering): one pass to learn them
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})  # a block holds whole rows
        object.__setattr__(self, "X", X)

    def block_rows(self) -> list[int]:
        return [int(c) for c in self.X.chunks[0]]

    def map(self, fn: Callable[..., Any], *args: Any, per_block: Sequence[Any] | None = None) -> list[Any]:
        import dask

        # parameters shared by every block go into the graph once, not once per task
        shared = tuple(dask.delayed(a) if isinstance(a, (list, tuple, np.ndarray)) else a for a in args)
        task = dask.delayed(_call, pure=True)
        blocks = self.X.to_delayed().ravel()
        return list(dask.compute(*[task(fn, b, self.prep, _block_args(shared, per_block, i))
                                   for i, b in enumerate(blocks)]))


def as_source(X: Any) -> Source | None:
    """X as a block source when it is one, a memmap or a Dask array; None for in-memory data."""
    if isinstance(X, Source):
        return X
    if isinstance(X, np.memmap):
        return ChunkedArray(X)
    if is_dask_array(X):
        return DaskSource(X)
    return None
