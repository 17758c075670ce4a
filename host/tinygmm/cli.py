"""The command line: argparse front door, the only module that prints for people.

It is longer than 500 lines because it holds every subcommand's options and help next to the
command that prints its results; the work itself lives in the pipeline's packages."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .errors import TinyGMMError
from .project.boards import DEFAULT_BAUD, Board, emulators

COVARIANCE_CHOICES = ("full", "tied", "diag", "spherical")
CRITERION_CHOICES = ("bic", "aic", "lrt")
DEFAULT_DEMO_OUTPUT = Path("tinygmm-demo") / "model.json"
# Exit codes: argparse uses 2 for bad usage; 130 = 128 + SIGINT, as shells report Ctrl-C.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# Seconds a whole `tinygmm verify` may take (build, flash, every vector, timing) before it stops.
DEFAULT_OVERALL_TIMEOUT = 900.0


# -- argument parsing -------------------------------------------------------------------


def k_range(text: str) -> range:
    """'1:12' -> range(1, 13) (both ends included)."""
    try:
        lo, hi = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range like 1:12") from None
    if lo < 1 or hi < lo:
        raise argparse.ArgumentTypeError(f"{text!r}: need 1 <= first <= last, as in 1:12")
    return range(lo, hi + 1)


def _number(text: str, convert: Callable[[str], Any] = float, what: str = "a number") -> Any:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def percentile(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 100")
    return value


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", metavar="DATA", help="CSV file (comma, semicolon or tab separated), or a Parquet file "
                   "(.parquet: read one row group at a time, so it may be larger than memory; needs tinygmm[dask])")
    p.add_argument("--columns", help='columns to use, by header name or 0-based index: "Age,Annual Income (k$)" or "2,4" '
                   "(default: every all-numeric column)")
    p.add_argument("--drop-missing", action="store_true", help="skip rows with empty/NA/nan cells instead of failing")
    p.add_argument("--covariance", choices=COVARIANCE_CHOICES, default="full", help="covariance type (default: full)")
    p.add_argument("--scale", choices=("standard", "none"), default="standard",
                   help="standardise each column before fitting (default: standard)")
    p.add_argument("--n-init", type=positive_int, default=1, metavar="N", help="EM restarts per k, best kept (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed, for reproducible fits (default: 0)")
    p.add_argument("--dask", metavar="SCHEDULER",
                   help="fit on a Dask cluster: its scheduler's address (tcp://host:8786); each worker reads its "
                        "share of a Parquet file, which must be at the same path there (needs tinygmm[dask])")


def _add_selection_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("-k", "--n-components", type=positive_int, metavar="N", help="number of components")
    group.add_argument("--k-range", type=k_range, metavar="A:B",
                       help="candidate numbers of components, both ends included, e.g. 1:12")
    p.add_argument("--criterion", choices=CRITERION_CHOICES, default="bic",
                   help="how to choose k: lowest BIC, lowest AIC, or likelihood-ratio test (default: bic)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level for --criterion lrt (default: 0.05)")


class _Parser(argparse.ArgumentParser):
    """Usage errors as `tinygmm: error: [command: ]message`, exit 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(EXIT_USAGE, f"tinygmm: error: {command}{message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tinygmm",
        description="Fit Gaussian mixture models and take them to microcontrollers.",
        epilog="Start with `tinygmm demo`; docs/tutorial.md takes a CSV file to a verified board step by step. "
               "`tinygmm COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"tinygmm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    p = sub.add_parser("fit", help="fit a model to a CSV file and save it as model JSON",
                       description="Fit a Gaussian mixture to columns of a CSV file and save the model.")
    _add_data_args(p)
    _add_selection_args(p)
    p.add_argument("--anomaly-percentile", type=percentile, default=1.0, metavar="P",
                   help="anomaly threshold: this percentile of the training log-likelihoods (default: 1)")
    p.add_argument("--units", metavar="NAME=UNIT,...",
                   help='units of columns, kept in the model for its pictures: "Age=years" (a name that ends with '
                   "its unit, as \"Annual Income (k$)\", needs none)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="model.json", help="where to write the model")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("select", help="compare numbers of components by BIC/AIC/LRT and print the table",
                       description="Fit each k in a range and print log-likelihood, BIC, AIC (and LRT) per k.")
    _add_data_args(p)
    _add_selection_args(p)
    p.add_argument("--plot", type=Path, metavar="selection.png",
                   help="also draw BIC/AIC and the likelihood-ratio tests against k (needs tinygmm[plot])")
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("info", help="describe a model file", description="Print what a model file holds.")
    p.add_argument("model", type=Path, metavar="model.json")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("plot", help="draw a model's clusters over data (needs tinygmm[plot])",
                       description="Draw the data coloured by predicted component, the negative log-likelihood "
                       "contours, the component means and their 1- and 2-sigma ellipses, in the data's own units. "
                       "More than two features make a pair grid.")
    p.add_argument("model", type=Path, metavar="model.json")
    p.add_argument("data", metavar="DATA.csv", help="CSV file with the model's features")
    p.add_argument("--columns", help="columns of the CSV, as for `tinygmm fit` (default: the model's feature names)")
    p.add_argument("--drop-missing", action="store_true", help="skip rows with empty/NA/nan cells instead of failing")
    p.add_argument("--features", metavar="A,B",
                   help="model features to draw, by name or 0-based index (default: all of them)")
    p.add_argument("--units", metavar="NAME=UNIT,...",
                   help='units for the axes: "Age=years" (default: those `tinygmm fit --units` kept in the model; '
                   "the column name alone where none is known)")
    p.add_argument("-o", "--output", "--plot", dest="output", required=True, type=Path, metavar="clusters.png",
                   help="where to write the picture (.png, .svg or .pdf); --plot as in select and verify")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("demo", help="the whole path on built-in data: fit, choose k, export, build, verify",
                       description="Run the whole path on built-in data with no board: choose k by BIC over 1..6, "
                       "save, describe, export a PlatformIO project, build the native firmware with an offline "
                       "PlatformIO core, and verify it against the host.")
    p.add_argument("-o", "--output", type=Path, default=DEFAULT_DEMO_OUTPUT, metavar="model.json",
                   help=f"where to write the demo model (default: {DEFAULT_DEMO_OUTPUT})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("boards", help="list the boards a project can be built for, with their memory limits",
                       description="List the boards: PlatformIO env, flash and RAM limits, serial buffer, platform.")
    p.set_defaults(func=cmd_boards)

    p = sub.add_parser("pio-offline", help="make a PlatformIO core that builds native and uno with no network",
                       description="Provision an isolated PlatformIO core from PyPI (SCons) and Debian packages "
                       "(gcc-avr avr-libc binutils-avr arduino-core-avr), then print the variable to export.")
    p.add_argument("--core-dir", type=Path, metavar="DIR",
                   help="where to make it (default: $TINYGMM_PIO_CORE or ~/.cache/tinygmm/pio-core)")
    p.set_defaults(func=cmd_pio_offline)

    p = sub.add_parser("export", help="write a PlatformIO project, or a library for your own firmware, for a model",
                       description="Render a PlatformIO project (firmware, model header, platformio.ini with one env "
                       "per board plus native, test vectors, README), or with --library a library for your own "
                       "firmware (PlatformIO and Arduino IDE: the core, the model header, the protocol for test "
                       "builds, an example sketch, a .zip). Re-exporting rewrites only the files tinygmm generated.")
    p.add_argument("model", type=Path, metavar="model.json")
    p.add_argument("--board", action="append", default=[], metavar="BOARD", dest="boards",
                   help="a board to build for (repeatable; see `tinygmm boards`); native is always included. "
                   "With --library: boards to check the model fits")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--output", type=Path, metavar="DIR", help="project folder")
    where.add_argument("--library", type=Path, metavar="DIR",
                       help="library folder, e.g. your project's lib/NAME (its README says how to use it)")
    p.add_argument("--name", metavar="NAME",
                   help="with --library: the model's name in its C identifiers and the library's (default: DIR's name)")
    p.add_argument("--data", metavar="DATA.csv", help="training data: its rows become test vectors too")
    p.add_argument("--columns", help="columns of --data, as for `tinygmm fit` (default: the model's feature names)")
    p.add_argument("--drop-missing", action="store_true", help="skip rows of --data with empty/NA/nan cells")
    p.add_argument("--force", action="store_true", help="overwrite files tinygmm did not write, or edited since")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("build", help="build an exported project with PlatformIO (pio run)",
                       description="Run `pio run` for one env (default: every env that builds here). A user's own "
                       "project using a model library: its test build (-DTINYGMM_PROTO), the one verify runs.")
    p.add_argument("project", type=Path, metavar="DIR")
    p.add_argument("-e", "--env", metavar="ENV", help="PlatformIO env (board) to build")
    p.add_argument("--offline", action="store_true",
                   help="use tinygmm's offline PlatformIO core (made on first use; see `tinygmm pio-offline`)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("flash", help="build and upload an exported project to a board, or to the emulated Uno",
                       description="Run `pio run -t upload` for a board env: avrdude uploads through the board's "
                       "bootloader on a serial port, or (--emulator simavr) into an emulated Uno started in its "
                       "bootloader with an empty flash; the firmware is then asked for its model id.")
    p.add_argument("project", type=Path, metavar="DIR")
    p.add_argument("-e", "--env", required=True, metavar="ENV", help="PlatformIO env (board) to upload")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", default="auto", metavar="PORT|auto",
                       help="serial port; auto picks the only port that looks like the board (default: auto)")
    where.add_argument("--emulator", choices=[name for name, (e, b) in emulators().items() if e.flashable and b.bootloader],
                       help="upload into an emulated board with its bootloader instead (it lasts as long as this "
                       "command: see --keep)")
    p.add_argument("--keep", action="store_true",
                   help="with --emulator: keep the emulated board on its port until Ctrl-C or end of input, for "
                   "`tinygmm verify/flash --port PORT` from elsewhere; Enter resets it into its bootloader")
    p.add_argument("--offline", action="store_true", help="use tinygmm's offline PlatformIO core")
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("verify", help="check a board, native build or emulator against the host on the test vectors",
                       description="Build if needed, flash if asked, send every test vector, compare the device's "
                       "outputs with the host's (float32 twin and float64 bounds), print a table. Exit status 0 "
                       "only when every check passes.")
    p.add_argument("project", type=Path, metavar="DIR",
                   help="an exported project; your own PlatformIO project using a model library (its test build "
                   "is made with -DTINYGMM_PROTO); or a model library, for a board on --port running your sketch")
    p.add_argument("-e", "--env", metavar="ENV",
                   help="the project's env (board) to verify (default with --emulator: the env it runs)")
    p.add_argument("--port", metavar="PORT|auto", action="append",
                   help="a board on a serial port (device path or pyserial URL such as rfc2217://host:4001 for a "
                        "board served over the network; default with a board's -e: auto, as for flash); repeat "
                        "for several boards, verified side by side")
    p.add_argument("--emulator", choices=list(emulators()), action="append",
                   help="run the firmware here: the native build, an AVR board's firmware in simavr (or the "
                   "uno's in qemu), or a CPU class's in QEMU (its instruction set, float ABI and compiler, not "
                   "a board's peripherals; `tinygmm boards` shows which class runs which board); repeatable, "
                   "as --port")
    p.add_argument("--baud", type=positive_int, default=0,
                   help=f"serial speed for --port (default: the board's, {DEFAULT_BAUD} for every board tinygmm knows)")
    p.add_argument("--flash", action="store_true",
                   help="upload the firmware first: to the board on --port, or (--emulator simavr) into an emulated "
                   "Uno started in its bootloader, which the verification then talks to")
    p.add_argument("--reset", action="store_true",
                   help="reset the board by DTR after opening the port (by default it is left running)")
    p.add_argument("--offline", action="store_true", help="build with tinygmm's offline PlatformIO core")
    p.add_argument("--report", type=Path, metavar="report.json",
                   help="also write the results as JSON (several targets: one file with a report per target)")
    p.add_argument("--log", type=Path, metavar="link.log",
                   help="where to write the timestamped bytes sent and received (default: DIR/.tinygmm/logs/)")
    p.add_argument("--no-bench", action="store_true", help="skip the on-device timing")
    p.add_argument("--timeout", type=positive_float, default=DEFAULT_OVERALL_TIMEOUT, metavar="SECONDS",
                   help=f"stop the whole run after this long (default: {DEFAULT_OVERALL_TIMEOUT:g}; "
                   "each request has its own timeout too)")
    p.add_argument("--plot", type=Path, metavar="verify.png",
                   help="also draw each vector's score error against its bound, and each check's worst "
                   "error/bound per kind of vector (needs tinygmm[plot])")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("ports", help="list serial ports and the boards they probably are",
                       description="List serial ports with their USB VID:PID and the boards that usually use it.")
    p.set_defaults(func=cmd_ports)
    return parser


# -- entry point ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 error, 2 usage, 130 interrupted)."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help, --version, usage errors
            return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.func(args)
    except TinyGMMError as e:
        print(f"tinygmm: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        _clear_progress_line()
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`tinygmm info m.json | head -1`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    _clear_progress_line()
    print(f"tinygmm: warning: {message}", file=sys.stderr)


# -- progress ---------------------------------------------------------------------------

_progress_shown = False


# Seconds to wait for --dask's scheduler to answer.
DASK_CONNECT_TIMEOUT = 10.0
# Seconds between two progress lines: in-memory EM passes can take a millisecond each.
PROGRESS_INTERVAL = 0.1


def _progress_callback() -> Callable[[Any], None] | None:
    """A one-line progress reporter on stderr (each run, each EM pass), or None when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return None
    import time

    last = [0.0]

    def report(p: Any) -> None:
        global _progress_shown
        now = time.monotonic()
        if p.em_pass and now - last[0] < PROGRESS_INTERVAL:
            return
        last[0] = now
        if p.n_init > 1:
            restart = f", {p.n_init} restarts side by side" if p.restart == 0 else f", restart {p.restart}/{p.n_init}"
        else:
            restart = ""
        em = ""
        if p.em_pass:
            em = f": EM pass {p.em_pass}, log-likelihood {p.log_likelihood:.6g} per row, {p.seconds:.3g} s/pass"
        sys.stderr.write(f"\r\x1b[Kfitting k={p.k} ({p.index}/{p.total}){restart}{em} ...")
        sys.stderr.flush()
        _progress_shown = True

    return report


def _clear_progress_line() -> None:
    global _progress_shown
    if _progress_shown:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
        _progress_shown = False


# -- commands ---------------------------------------------------------------------------


PARQUET_SUFFIXES = (".parquet", ".pq")


def _read_data(args: argparse.Namespace) -> tuple[Any, list[str], list[str]]:
    """The data (an array, or a Parquet file read in blocks), its column names and notes."""
    if Path(args.data).suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(args)
    from .data import load_csv

    data = load_csv(args.data, args.columns, args.drop_missing)
    if args.dask:
        import dask.array as da

        return da.from_array(data.X, chunks=(max(1, len(data.X) // 8), -1)).persist(), data.feature_names, data.notes()
    return data.X, data.feature_names, data.notes()


def _read_parquet(args: argparse.Namespace) -> tuple[Any, list[str], list[str]]:
    from .data import data_notes
    from .fit.sources import DaskSource, ParquetData, Prep  # NumPy only: pyarrow and Dask load on use

    path = Path(args.data)
    if not path.is_file():
        raise TinyGMMError(f"{path}: no such file")
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    try:
        # --dask: the blocks keep every row and the fit leaves out the incomplete ones, counting them
        source = ParquetData(str(path.resolve()), columns, drop_missing=args.drop_missing and not args.dask)
    except ImportError as e:
        raise TinyGMMError(str(e)) from None
    except ValueError as e:  # a column that is not there, or not numbers (the message names the file)
        raise TinyGMMError(str(e)) from None
    except OSError as e:  # pyarrow's errors for a file that is not Parquet
        raise TinyGMMError(f"{path}: not a Parquet file? {e}") from None
    if args.dask:
        return (DaskSource(source.to_dask(), Prep(drop_missing=args.drop_missing)), list(source.names),
                data_notes(skipped=source.skipped))
    return source, list(source.names), data_notes(skipped=source.skipped)


def _fit(X: Any, names: list[str], candidates: range | list[int], **options: Any) -> Any:
    from .fit.build import fit_selection

    try:
        fitted = fit_selection(X, names, candidates, progress=_progress_callback(), **options)
    finally:
        _clear_progress_line()
    _print_notes(fitted.notes)
    return fitted


def _dask_client(args: argparse.Namespace) -> Any:
    """A dask.distributed Client for --dask (every Dask computation in the block goes there), or a no-op."""
    import contextlib

    if not args.dask:
        return contextlib.nullcontext()
    try:
        from distributed import Client
    except ImportError:
        raise TinyGMMError("--dask needs Dask: pip install 'tinygmm[dask]'") from None
    try:
        return Client(args.dask, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as e:
        raise TinyGMMError(f"cannot reach the Dask scheduler at {args.dask}: {e}") from None


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(f"tinygmm: note: {note}", file=sys.stderr)


def _candidates(args: argparse.Namespace) -> range | list[int]:
    """The k to fit: -k N alone, or every k of --k-range (what fit and select both take)."""
    if args.n_components is not None and args.criterion == "lrt":
        raise TinyGMMError("--criterion lrt compares numbers of components: use it with --k-range A:B, not -k")
    return [args.n_components] if args.n_components is not None else args.k_range


def cmd_fit(args: argparse.Namespace) -> int:
    from .tables import format_selection
    from .model import save

    with _dask_client(args):
        X, names, notes = _read_data(args)
        _print_notes(notes)
        fitted = _fit(X, names, _candidates(args), scale=args.scale, criterion=args.criterion,
                      covariance=args.covariance, n_init=args.n_init, seed=args.seed, alpha=args.alpha)
    if args.k_range is not None:
        print(format_selection(fitted.selection))
        print()
    metadata: dict[str, Any] = {"data": Path(args.data).name, "seed": args.seed, "n_init": args.n_init,
                                "scale": args.scale}
    if args.units:
        from .plots import parse_units

        metadata["units"] = parse_units(args.units, names, "the data")
    model = fitted.to_model(args.anomaly_percentile, metadata)
    save(model, args.output)
    print(f"saved {args.output}: k={model.n_components}, {model.covariance_type} covariance, "
          f"{model.n_features} feature(s), id {model.model_id}")
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from .tables import format_selection

    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()
    with _dask_client(args):
        X, names, notes = _read_data(args)
        _print_notes(notes)
        fitted = _fit(X, names, _candidates(args), scale=args.scale, criterion=args.criterion,
                      covariance=args.covariance, n_init=args.n_init, seed=args.seed, alpha=args.alpha)
    print(format_selection(fitted.selection))
    if args.plot:
        from .plots import save_figure, selection_figure

        save_figure(selection_figure(fitted.selection, alpha=args.alpha, data=Path(args.data).name, columns=names),
                    args.plot)
        print(f"plot written to {args.plot}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .model import load
    from .tables import format_info

    print(format_info(load(args.model), args.model))
    return 0


def _read_model_columns(args: argparse.Namespace, model: Any) -> np.ndarray:
    """The rows of ``args.data`` in the model's features (``--columns``, default: its feature names)."""
    from .data import data_notes, load_csv

    data = load_csv(args.data, args.columns or ",".join(model.feature_names), args.drop_missing)
    if data.X.shape[1] != model.n_features:
        raise TinyGMMError(f"{args.data}: {data.X.shape[1]} columns selected but the model has "
                           f"{model.n_features} features; choose them with --columns")
    _print_notes(data_notes(dropped=len(data.dropped_rows), dropped_at=data.dropped_rows))
    return data.X


def cmd_plot(args: argparse.Namespace) -> int:
    from .model import load
    from .plots import cluster_figure, parse_units, require_matplotlib, save_figure

    require_matplotlib()
    model = load(args.model)
    units = parse_units(args.units, model.feature_names) if args.units else None
    X = _read_model_columns(args, model)
    features = args.features.split(",") if args.features is not None else None
    save_figure(cluster_figure(model, X, features, units=units, data=Path(args.data).name), args.output)
    print(f"plot written to {args.output}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    try:
        state = run_demo(args.output, args.seed, _progress_callback(), _show_log)
    finally:
        _clear_progress_line()
    if state.passed:
        print("\n" + "\n".join(_next_steps(state.project)))
    return 0 if state.passed else EXIT_ERROR


def _next_steps(project: Path) -> list[str]:
    """What to run after the demo, with where the commands live when this is a virtual environment."""
    lines = ["next:"]
    if sys.prefix != sys.base_prefix:
        activate = Path(sys.prefix) / "bin" / "activate"
        shown = os.path.relpath(activate) if not os.path.relpath(activate).startswith("..") else str(activate)
        lines.append(f"  . {shown}    # puts tinygmm and pytest ({Path(sys.prefix) / 'bin'}) on your PATH")
    lines += [f"  tinygmm verify {project} --emulator simavr --offline    # the Uno's firmware, emulated",
              f"  pytest {project / 'hil'} --tinygmm-project {project} --tinygmm-emulator native --tinygmm-offline"
              "    # the same checks as a pytest suite",
              f"  tinygmm flash {project} -e uno --emulator simavr --offline    # an upload through the Uno's bootloader, "
              "emulated",
              f"  tinygmm flash {project} -e uno --port auto --offline && tinygmm verify {project} -e uno    # a real Uno",
              "  docs/tutorial.md: your own CSV file to a verified board, step by step"]
    return lines


def cmd_boards(args: argparse.Namespace) -> int:
    from .project.boards import format_boards

    print("\n".join(format_boards()))
    return 0


def cmd_pio_offline(args: argparse.Namespace) -> int:
    from .project.offline import provision_offline

    result = provision_offline(args.core_dir)
    _print_notes(result.notes)
    state = "made" if result.created else "up to date"
    print(f"offline PlatformIO core {state}: {result.core_dir}", file=sys.stderr)
    print(result.export_line())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .model import load
    from .project.export import export_project
    from .project.library import export_library, library_name

    if args.name is not None and args.library is None:
        raise TinyGMMError("--name names a library's model: use it with --library DIR")
    model = load(args.model)
    X_train = _read_model_columns(args, model) if args.data else None
    if args.library is not None:
        name = library_name(args.library, args.name)
        result = export_library(model, args.library, name, args.boards, X_train=X_train, force=args.force)
        what = f"library {result.project} (model {name}: {name}.h)"
    else:
        result = export_project(model, args.boards or ["native"], args.output, X_train=X_train, force=args.force)
        what = f"project {result.project}"
    removed = f", {len(result.removed)} removed" if result.removed else ""
    print(f"{what}: {len(result.written)} file(s) written, {len(result.unchanged)} unchanged{removed}")
    for line in result.memory:
        print(f"  {line}")
    if args.library is not None:
        print(f"next: {result.project / 'README.md'} says how to use it (PlatformIO: lib_deps = symlink://"
              f"{result.project.resolve()}; Arduino IDE: Add .ZIP Library {result.project / 'dist' / (name + '.zip')})")
    else:
        print(f"next: tinygmm build {result.project}   (add --offline where PlatformIO's registry is unreachable)")
    return 0


def _core_dir(args: argparse.Namespace, board: Board | None = None) -> Path | None:
    from .project.build import core_dir_for

    return core_dir_for(args.offline, board)


def _firmware_project(project: Path) -> Any:
    from .project.firmware import read_firmware_project

    return read_firmware_project(project)


def cmd_build(args: argparse.Namespace) -> int:
    from .project.build import check_buildable, uses_offline_core
    from .project.pio import parse_memory_use, run_pio

    found = _firmware_project(args.project)
    envs = list(found.envs)
    if args.env is not None and args.env not in envs:
        raise TinyGMMError(f"{args.project} has no env {args.env!r}; it has {', '.join(envs)} "
                           "(add a board with `tinygmm export --board`)")
    targets = [args.env] if args.env else envs
    if args.env is None:  # every env the offline core can build; the others named (CPU classes: always offline)
        offline_envs = [e for e in envs if uses_offline_core(found.envs[e], args.offline)]
        for env in [e for e in offline_envs if found.envs[e].why_not_buildable()]:
            _print_notes([f"skipping {env}: it cannot be built offline here ({found.envs[env].why_not_buildable()})"])
            targets.remove(env)
    for env in targets:
        check_buildable(found.envs[env], args.offline)
    cores: dict[bool, Path | None] = {}  # the offline core checked once, not once per env
    for env in targets:
        fw = found.firmware(env)
        offline = uses_offline_core(found.envs[env], args.offline)
        if offline not in cores:
            cores[offline] = _core_dir(args, found.envs[env])
        result = run_pio(["run", "-e", env], args.project, cores[offline], extra_env=fw.build_env_vars())
        use = parse_memory_use(result.output)
        if use is not None:
            print(f"tinygmm: {env}: flash {use.flash} B of {use.flash_max}, RAM {use.ram} B of {use.ram_max}")
    return 0


def cmd_flash(args: argparse.Namespace) -> int:
    from .project.build import flash

    found = _firmware_project(args.project)
    if args.env not in found.envs or not found.envs[args.env].on_a_port:
        boards = [e for e, b in found.envs.items() if b.on_a_port] or ["none: add one with `tinygmm export --board`"]
        raise TinyGMMError(f"cannot flash env {args.env!r}; the project's boards: {', '.join(boards)}")
    if args.emulator is not None:
        return _flash_emulated(args)
    if args.keep:
        raise TinyGMMError("--keep keeps an emulated board: use it with --emulator")
    from .project.build import check_buildable
    from .project.ports import resolve_port

    fw = found.firmware(args.env)
    port = resolve_port(args.port, fw.board.env)  # a missing board is the first thing to say
    check_buildable(fw.board, args.offline)
    port = flash(fw, port, _core_dir(args, fw.board))
    print(f"tinygmm: {args.env} flashed on {port}")
    return 0


def _flash_emulated(args: argparse.Namespace) -> int:
    """Upload into an emulated board, check that the new firmware answers, and keep the board if asked."""
    from .verify.session import VerifySession

    with VerifySession.open(args.project, args.env, emulator=args.emulator, offline=args.offline) as session:
        port = session.flash()
        with session.device() as dev:  # its bootloader has started the firmware: it answers with its model id
            model_id = dev.info.model_id if dev.info else "?"
        print(f"tinygmm: {args.env} flashed into the emulated {args.env} ({args.emulator}) on {port}: "
              f"the firmware answers as model {model_id}")
        if args.keep:
            print(f"tinygmm: the emulated {args.env} stays on {port} until Ctrl-C or end of input. From elsewhere:\n"
                  f"  tinygmm verify {args.project} -e {args.env} --port {port}\n"
                  f"  tinygmm flash DIR -e {args.env} --port {port} --offline    # after Enter here: a reset into its "
                  "bootloader, as its reset button would", flush=True)
            for _ in sys.stdin:
                session.board.reset()
                print(f"tinygmm: the emulated {args.env} was reset: its bootloader waits for the next upload",
                      flush=True)
    return 0


def _show_log(path: Path) -> None:
    print(f"tinygmm: link log (every byte, timestamped): {path}", file=sys.stderr)


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify.report import format_report
    from .verify.session import verify_project

    ports, emulators = args.port or [], args.emulator or []
    if len(ports) + len(emulators) > 1:
        return _verify_farm(args, ports, emulators)
    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()
    port, emulator = (ports or [None])[0], (emulators or [None])[0]
    try:
        report = verify_project(args.project, args.env, port=port, emulator=emulator, baud=args.baud,
                                flash=args.flash, offline=args.offline, bench=not args.no_bench, log=args.log,
                                reset=args.reset, timeout=args.timeout, on_log=_show_log)
    except (TinyGMMError, KeyboardInterrupt) as e:  # the report says what failed, as a CI job expects
        if args.report:
            from .verify.report import save_failure_report

            save_failure_report(args.report, args.project, e)
            print(f"tinygmm: failure report written to {args.report}", file=sys.stderr)
        raise
    print(format_report(report))
    if args.report:
        report.save(args.report)
        print(f"report written to {args.report}")
    if args.plot:
        from .plots import save_figure, verify_figure

        save_figure(verify_figure(report, report.model), args.plot)
        print(f"plot written to {args.plot}")
    return 0 if report.passed else EXIT_ERROR


def _verify_farm(args: argparse.Namespace, ports: list[str], emulators: list[str]) -> int:
    """Several targets side by side: each one's report as it finishes, then a summary."""
    from .verify.farm import format_summary, save_farm_report, target_specs, verify_farm
    from .verify.report import format_report

    if args.plot:
        raise TinyGMMError("--plot draws one target: verify several without it, or one at a time with it")

    def done(result: Any) -> None:
        print(f"== {result.spec.id} ({result.spec.where}) ==")
        print(format_report(result.report) if result.report is not None else f"ERROR: {result.error}")
        if result.log is not None and result.log.exists():
            _show_log(result.log)
        sys.stdout.flush()

    results = verify_farm(args.project, target_specs(ports, emulators, args.env), baud=args.baud, flash=args.flash,
                          offline=args.offline, bench=not args.no_bench, reset=args.reset, timeout=args.timeout,
                          on_done=done)
    print(format_summary(results))
    if args.report:
        save_farm_report(args.report, results)
        print(f"report written to {args.report}")
    return 0 if all(r.passed for r in results) else EXIT_ERROR


def cmd_ports(args: argparse.Namespace) -> int:
    from .project.ports import format_ports, list_ports

    print("\n".join(format_ports(list_ports())))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
