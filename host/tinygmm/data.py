"""CSV reading with errors that name the file, row and column, and the built-in demo data."""
from __future__ import annotations

import csv
import itertools
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import TinyGMMError

# Cells read as "no value" (compared case-insensitively after stripping blanks).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null"})
# How many offending row numbers an error message lists before "and N more".
MAX_LISTED_ROWS = 10
# Bytes handed to csv.Sniffer to guess the delimiter.
SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t"

# A plain decimal number: what a spreadsheet writes.  Stricter than float(), which also
# takes "1_000", "infinity" and padded forms; "inf"/"infinity" are recognised separately.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INFINITY = re.compile(r"[+-]?inf(?:inity)?", re.IGNORECASE)


@dataclass
class CsvData:
    """What ``load_csv`` read: the matrix, its column names, and notes for the user."""

    X: np.ndarray
    feature_names: list[str]
    has_header: bool
    dropped_rows: list[int] = field(default_factory=list)  # file line numbers
    skipped_columns: list[str] = field(default_factory=list)  # non-numeric, not selected

    def notes(self) -> list[str]:
        """What the user should know about how the file was read (skipped columns, dropped rows,
        columns that hold a single value)."""
        constant = [n for n, std in zip(self.feature_names, self.X.std(axis=0)) if std == 0.0]
        return data_notes(skipped=self.skipped_columns, dropped=len(self.dropped_rows), dropped_at=self.dropped_rows,
                          constant=constant)


def data_notes(*, skipped: Sequence[str] = (), dropped: int = 0, dropped_at: Sequence[int] = (),
               constant: Sequence[str] = ()) -> list[str]:
    """How data was read, worded once for every reader (CSV, Parquet, Dask, a block fit): text columns
    skipped, rows dropped for missing values (with their line numbers when known), columns of one value."""
    notes = []
    if skipped:
        notes.append(f"skipped non-numeric column(s) {', '.join(map(repr, skipped))}; choose columns with --columns")
    if dropped:
        notes.append(f"dropped {dropped} row(s) with missing values"
                     + (f" (lines {_listing(list(dropped_at))})" if dropped_at else ""))
    if constant:
        notes.append(f"column(s) {', '.join(map(repr, constant))} hold a single value and carry no "
                     "information; leave them out with --columns")
    return notes


def read_csv(path: str | Path, columns: str | None = None, drop_missing: bool = False) -> tuple[np.ndarray, list[str]]:
    """Read numeric columns of a CSV file into an (N, D) float64 array and their names.

    ``columns`` selects columns by header name or 0-based index, comma-separated
    (``"Age,Spending Score (1-100)"`` or ``"2,4"``); without it every column whose cells
    are all numbers is used.  Rows with a missing cell (empty, NA, nan) are an error
    unless ``drop_missing``.  Every problem raises ``TinyGMMError`` naming the file line.
    """
    data = load_csv(path, columns, drop_missing)
    return data.X, data.feature_names


def load_csv(path: str | Path, columns: str | None = None, drop_missing: bool = False) -> CsvData:
    """Like ``read_csv`` but also reports dropped rows and skipped columns.

    Streams the file in chunks of CHUNK_LINES lines: each chunk is parsed by NumPy's C reader when it
    is plain numbers, else cell by cell with the exact rules (and their messages); the result is
    filled into one preallocated array, so memory stays about that of the float64 matrix.
    """
    path = Path(path)
    with _open_text(path) as f:
        dialect = _sniff(path, f)
        chunks = _chunks(path, f)
        first_start, first_lines = next(chunks, (1, []))
        first = _rows(path, first_lines, first_start, dialect)
        if not first:
            raise TinyGMMError(f"{path}: file is empty; give a CSV file with a header row and data rows")
        width = len(first[0][1])
        selected = _parse_column_spec(columns) if columns is not None else None
        has_header = _detect_header(first, selected)
        header = [c.strip() or f"x{j}" for j, c in enumerate(first[0][1])] if has_header else None
        names = header if header is not None else [f"x{j}" for j in range(width)]
        sample = first[1:] if has_header else first
        if not sample:
            raise TinyGMMError(f"{path}: has a header row but no data rows")
        for line, row in sample:
            _check_width(path, line, row, width, first[0][0])
        skipped: list[str] = []
        if selected is None:
            # A column with no number in the first chunk is text (a category, an id): skipped with a
            # note. Any other column is numeric, so a stray word in it is an error, not a reason to drop it.
            indices = [j for j in range(width) if any(_is_number(row[j]) for _, row in sample)]
            skipped = [names[j] for j in range(width) if j not in indices]
            if not indices:
                raise TinyGMMError(
                    f"{path}: no column holds numbers (columns: {_listing(names)}); "
                    "choose columns with --columns or fix the file"
                )
        else:
            indices = _resolve_columns(path, selected, header, width)
        X = np.empty((_count_lines(path), len(indices)))
        n = 0
        missing_rows: list[int] = []
        block = _convert(path, sample, indices, names, width, first[0][0])
        n = _keep(X, n, block, sample, missing_rows, drop_missing)
        for start, lines in chunks:
            block, lines_of = _fast_block(lines, dialect, width, indices)
            if block is None:
                rows = _rows(path, lines, start, dialect)
                block, lines_of = _convert(path, rows, indices, names, width, first[0][0]), rows
            n = _keep(X, n, block, lines_of, missing_rows, drop_missing)
    if missing_rows and not drop_missing:
        raise TinyGMMError(
            f"{path}: {len(missing_rows)} row(s) have missing values (empty, NA or nan) at "
            f"line(s) {_listing(missing_rows)}; fill them in or pass --drop-missing to skip those rows"
        )
    if n == 0:
        raise TinyGMMError(f"{path}: every row has a missing value; nothing is left to fit")
    return CsvData(X[:n], [names[j] for j in indices], has_header, missing_rows if drop_missing else [], skipped)


# Lines parsed at a time: large enough for NumPy's reader to run at full speed, small beside the data.
CHUNK_LINES = 65536


def _open_text(path: Path):
    try:
        # utf-8-sig drops the byte-order mark spreadsheets like to write; newline="" as csv wants.
        return path.open("r", newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise TinyGMMError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TinyGMMError(f"{path}: is a directory, not a CSV file") from None
    except OSError as e:
        raise TinyGMMError(f"{path}: cannot read: {e.strerror}") from None


def _decode_errors(path: Path, action):
    try:
        return action()
    except UnicodeDecodeError as e:
        raise TinyGMMError(f"{path}: is not UTF-8 text ({e.reason}); save it as UTF-8 CSV") from None
    except csv.Error as e:
        raise TinyGMMError(f"{path}: malformed CSV: {e}") from None
    except OSError as e:
        raise TinyGMMError(f"{path}: cannot read: {e.strerror}") from None


def _sniff(path: Path, f) -> type[csv.Dialect] | csv.Dialect:
    sample = _decode_errors(path, lambda: f.read(SNIFF_BYTES))
    f.seek(0)
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
    except csv.Error:
        return csv.excel


def _chunks(path: Path, f):
    """(first line number, lines) of CHUNK_LINES lines at a time."""
    start = 1
    while True:
        lines = _decode_errors(path, lambda: list(itertools.islice(f, CHUNK_LINES)))
        if not lines:
            return
        yield start, lines
        start += len(lines)


def _count_lines(path: Path) -> int:
    """Lines in the file (an upper bound on its rows), counted in binary blocks."""
    count, last = 0, b"\n"
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _rows(path: Path, lines: list[str], start: int, dialect) -> list[tuple[int, list[str]]]:
    """The non-blank rows of ``lines`` with their 1-based file line numbers."""
    def parse() -> list[tuple[int, list[str]]]:
        reader = csv.reader(lines, dialect)
        rows, line = [], start
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((line, row))
            line = start + reader.line_num
        return rows
    return _decode_errors(path, parse)


def _check_width(path: Path, line: int, row: list[str], width: int, first_line: int) -> None:
    if len(row) != width:
        raise TinyGMMError(
            f"{path}: line {line} has {len(row)} fields but line {first_line} has {width}; "
            "fix the row or quote fields that contain the delimiter"
        )


def _fast_block(lines: list[str], dialect, width: int, indices: list[int]
                ) -> tuple[np.ndarray | None, list[tuple[int, list[str]]]]:
    """The chunk by NumPy's C reader when it is plain finite numbers in every column, else (None, [])
    and the caller takes the exact path. Quotes, underscores ('1_000', which NumPy would take) or
    any failure send it there."""
    text_risk = any(('"' in line or "_" in line) for line in lines)
    if text_risk or not isinstance(dialect.delimiter, str):
        return None, []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-blank chunk: "input contained no data"
            block = np.loadtxt(lines, delimiter=dialect.delimiter, dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        return None, []
    if block.shape[1] != width and block.size:
        return None, []
    block = block[:, indices] if block.size else np.empty((0, len(indices)))
    if not np.all(np.isfinite(block)):
        return None, []
    return block, []


def _convert(path: Path, rows: list[tuple[int, list[str]]], indices: list[int], names: list[str], width: int,
             first_line: int) -> np.ndarray:
    """The rows' selected cells as floats (NaN where missing), every problem a TinyGMMError naming
    the line and the column."""
    block = np.empty((len(rows), len(indices)))
    for line, row in rows:
        _check_width(path, line, row, width, first_line)
    for c, j in enumerate(indices):
        cells = [row[j].strip() for _, row in rows]
        try:
            if not any("_" in cell for cell in cells):
                values = np.array(cells, dtype=np.float64)
                if np.all(np.isfinite(values)):
                    block[:, c] = values
                    continue
        except ValueError:
            pass
        block[:, c] = [math.nan if cell.lower() in MISSING_TOKENS else _parse_number(path, line, names[j], cell)
                       for cell, (line, _) in zip(cells, rows)]
    return block


def _keep(X: np.ndarray, n: int, block: np.ndarray, rows: list[tuple[int, list[str]]], missing_rows: list[int],
          drop_missing: bool) -> int:
    """Append the block's complete rows to X[n:] (all rows unless dropping); record missing lines."""
    incomplete = np.isnan(block).any(axis=1)
    if incomplete.any():  # only the exact path yields NaN, and it comes with its rows
        missing_rows.extend(rows[i][0] for i in np.flatnonzero(incomplete))
        block = block[~incomplete] if drop_missing else block
    X[n:n + len(block)] = block
    return n + len(block)


def demo_data() -> tuple[np.ndarray, list[str]]:
    """Three 2-D Gaussian blobs of 200 points each (centres (0,0), (5,5), (5,0), unit covariance).

    Generated from a fixed seed, so every call returns the same 600 x 2 array.
    """
    rng = np.random.default_rng(42)
    centres = np.array([[0.0, 0.0], [5.0, 5.0], [5.0, 0.0]])
    X = np.vstack([c + rng.standard_normal((200, 2)) for c in centres])
    return X, ["x", "y"]


def _parse_column_spec(spec: str) -> list[str]:
    parts = [p.strip() for p in spec.split(",")]
    if not spec.strip() or any(not p for p in parts):
        raise TinyGMMError(f"--columns {spec!r}: give column names or 0-based indices separated by commas")
    return parts


def _is_number(cell: str) -> bool:
    return _NUMBER.fullmatch(cell.strip()) is not None


def _detect_header(rows: list[tuple[int, list[str]]], selected: list[str] | None) -> bool:
    """The first row is a header when it has a non-numeric cell where data is expected.

    With --columns given those are the selected columns (a name that is not an index means
    a header); otherwise the columns that are numeric on the second row, so a text column
    such as "Gender" in a header-less file does not make its first row a header.
    """
    first = rows[0][1]
    cols: list[int] = []
    if selected is not None:
        if any(not _is_int(s) for s in selected):
            return True
        cols = [int(s) for s in selected if int(s) < len(first)]
    if cols:
        pass
    elif len(rows) > 1:
        cols = [j for j, cell in enumerate(rows[1][1]) if _is_number(cell)]
    else:
        cols = list(range(len(first)))
    return any(not _is_number(first[j]) and first[j].strip().lower() not in MISSING_TOKENS for j in cols)


def _is_int(text: str) -> bool:
    return re.fullmatch(r"\d+", text) is not None


def _resolve_columns(path: Path, selected: list[str], header: list[str] | None, width: int) -> list[int]:
    if header is not None:
        available = ", ".join(f"{j}: {name!r}" for j, name in enumerate(header))
    else:
        available = f"indices 0..{width - 1} (the file has no header row, so select by index)"
    indices = []
    for token in selected:
        if header is not None and token in header:
            if header.count(token) > 1:
                raise TinyGMMError(f"{path}: column name {token!r} appears more than once; select it by index")
            j = header.index(token)
        elif _is_int(token) and int(token) < width:
            j = int(token)
        else:
            raise TinyGMMError(f"{path}: no column {token!r}; available columns: {available}")
        if j in indices:
            raise TinyGMMError(f"{path}: column {token!r} is selected twice")
        indices.append(j)
    return indices


def _parse_number(path: Path, line: int, column: str, cell: str) -> float:
    value = float(cell) if _NUMBER.fullmatch(cell) else None
    if value is not None and math.isfinite(value):
        return value
    if value is not None or _INFINITY.fullmatch(cell):
        raise TinyGMMError(f"{path}: line {line}, column {column!r}: value {cell!r} is not finite; remove or fix it")
    hint = ""
    if re.fullmatch(r"[+-]?\d+,\d+", cell):
        hint = " (decimal commas are not supported; write 1.5, not 1,5)"
    raise TinyGMMError(
        f"{path}: line {line}, column {column!r}: {cell!r} is not a number{hint}; "
        "fix the cell or leave the column out with --columns"
    )


def _listing(items: list, limit: int | None = MAX_LISTED_ROWS) -> str:
    shown = items if limit is None else items[:limit]
    text = ", ".join(repr(x) if isinstance(x, str) else str(x) for x in shown)
    if limit is not None and len(items) > limit:
        text += f" and {len(items) - limit} more"
    return text
