"""Cost of tinygmm_predict / tinygmm_score on the devices: ATmega328P cycles in simavr, and instructions on
every CPU class in QEMU side by side with emlearn's generated code for the same models.

Usage: python bench/device_cost.py [--points N] [--keep DIR] [--classes cortex-m4f,...] [--no-avr]
Needs avr-gcc, avr-libc and simavr with libsimavr-dev (Debian: gcc-avr avr-libc binutils-avr
simavr libsimavr-dev). Cycle counts are exact: the firmware runs with interrupts off and marks
each call with GPIOR0 writes, which firmware/dev/simavr_cycles.c turns into cycle counts.
The AVR's labels are also checked against the float32 twin (they must be identical).

CPU classes (cortex-m4f, cortex-m7, cortex-m0, rv32imc; Debian: gcc-arm-none-eabi
libnewlib-arm-none-eabi gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-arm
qemu-system-misc): firmware/dev/bare_bench.c built with each class's PlatformIO flags (bare_build.py),
both libraries in one program, counted exactly by the glue's instruction counter under -icount.
emlearn (`pip install 'tinygmm[bench]'`) is compiled with the same flags; without it the tinygmm
columns are printed alone.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinygmm import GaussianMixture
from tinygmm.device.fold import fold, packed_size
from tinygmm.model import Model
from tinygmm.device.render import c_float, write_header
from tinygmm.resources import firmware_dir
from tinygmm.device.twin import DeviceTwin

from avr_size import AVR_CFLAGS, measure_avr

MALL_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "Mall_Customers.csv"
# Reference points from the issue (emlearn 0.23.2's generated code in simavr, and the float-op
# count of unpruned evaluation times one float multiply-add, ~320 cycles on the ATmega328P).
CYCLES_PER_FLOAT_OP = 320
EMLEARN = {"mall": (27_800, 45_800), "blobs16x8": (596_000, 606_000)}
# The rest of a PlatformIO Uno build's flags (platform atmelavr: -Os -ffunction-sections
# -fdata-sections -flto, linked with -flto -fuse-linker-plugin -Wl,--gc-sections), on top of
# AVR_CFLAGS (-mmcu=atmega328p -Os -ffp-contract=off), so the cycles are those of a real sketch.
PIO_FLAGS = ["-ffunction-sections", "-fdata-sections", "-flto", "-fuse-linker-plugin", "-Wl,--gc-sections"]
# The targets: predict median, predict worst, score median (none for the tied blobs
# model, measured beside them: its predict is the linear score, K dot products of length D).
TARGETS = {"mall": (9_000, 16_000, 30_000), "blobs16x8": (40_000, 250_000, 130_000)}


def mall_model() -> tuple[Model, np.ndarray]:
    with open(MALL_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    X = np.array([[float(r["Age"]), float(r["Spending Score (1-100)"])] for r in rows])
    gmm = GaussianMixture(7, covariance_type="full", random_state=0).fit(X)
    return Model.from_gmm(gmm, feature_names=["Age", "Spending Score"], X_train=X), X


def blobs_model(covariance_type: str = "full") -> tuple[Model, np.ndarray]:
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(5000, n_features=8, centers=16, random_state=0)
    gmm = GaussianMixture(16, covariance_type=covariance_type, random_state=0).fit(X)
    return Model.from_gmm(gmm, X_train=X), X


def point_sets(m: Model, X: np.ndarray, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    K, D = m.n_components, m.n_features
    comp = rng.choice(K, size=n, p=m.weights)
    cov = {"full": m.covariances, "tied": np.broadcast_to(m.covariances, (K, D, D))}[m.covariance_type]
    drawn = m.means[comp] + np.einsum("nij,nj->ni", np.linalg.cholesky(cov)[comp], rng.normal(size=(n, D)))
    lo, hi = X.min(axis=0), X.max(axis=0)
    box = rng.uniform(lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo), size=(n, D))
    u = rng.normal(size=(8, D))
    far = X.mean(axis=0) + 1000 * (hi - lo) * u / np.linalg.norm(u, axis=1, keepdims=True)
    return {"model": drawn, "box": box, "far": far}


def points_header(points: np.ndarray, progmem: str = "PROGMEM") -> str:
    rows = ",\n".join("    {" + ", ".join(c_float(v) for v in p) + "}" for p in points.astype(np.float32))
    return (f"#define BENCH_N {len(points)}\n"
            f"static const float bench_points[BENCH_N][{points.shape[1]}] {progmem} = {{\n{rows}\n}};\n")


def run_firmware(tmp: Path, header: Path, points: np.ndarray, runner: Path) -> np.ndarray:
    (tmp / "points.h").write_text(points_header(points))
    elf = tmp / "bench.elf"
    tools, core = firmware_dir() / "dev", firmware_dir() / "lib" / "tinygmm"
    subprocess.run(["avr-gcc", "-std=c99", *AVR_CFLAGS, *PIO_FLAGS, f"-I{core}", f'-DBENCH_MODEL_HEADER="{header}"',
                    f'-DBENCH_POINTS_HEADER="{tmp / "points.h"}"', str(tools / "avr_bench.c"), "-o", str(elf), "-lm"],
                   check=True)
    out = subprocess.run([str(runner), str(elf)], capture_output=True, text=True, check=True).stdout
    # simavr itself prints a "Loaded ..." line; ours are three integers.
    rows = np.array([[int(v) for v in ln.split()] for ln in out.splitlines() if ln.replace(" ", "").isdigit()])
    return rows.reshape(len(points), 3, 3)  # point, (empty, predict, score), (tag, cycles, result)


def packed_minimum(m: Model) -> int:
    """Floats a full or tied model needs at the least: means, packed triangular factors, one bias each."""
    K, D = m.n_components, m.n_features
    return K * (D + 1) + packed_size(D) if m.covariance_type == "tied" else K * (D + packed_size(D) + 1)


def unpruned_ops(K: int, D: int, covariance_type: str = "full") -> int:
    """Float operations of evaluating every row of every full component: D subtractions of the
    centre, per component D(D+1)/2 multiply-adds, D subtractions, D squares and adds, one bias
    (tied: the D(D+1)/2 multiply-adds once)."""
    if covariance_type == "tied":
        return D + packed_size(D) + K * (2 * D + 1)
    return D + K * (packed_size(D) + 2 * D + 1)


def bench(name: str, m: Model, X: np.ndarray, n: int, runner: Path, keep: Path | None) -> str:
    rng = np.random.default_rng(0)
    dev = fold(m)
    report = measure_avr(dev)
    print(f"\n== {name}: {m.covariance_type}, K={m.n_components}, D={m.n_features} ==")
    for line in report.lines():
        print("  " + line)
    formula = "K(D + 1) + D(D+1)/2" if m.covariance_type == "tied" else "K(D + D(D+1)/2 + 1)"
    print(f"  model data {dev.parameter_bytes} B = {dev.n_floats} floats (packed minimum {formula} = {packed_minimum(m)})")
    with tempfile.TemporaryDirectory(prefix="tinygmm-bench-") as t:
        tmp = keep or Path(t)
        header = write_header(dev, tmp / "model.h", "gmm_model")
        results = {}
        for kind, pts in point_sets(m, X, n, rng).items():
            r = run_firmware(tmp, header, pts, runner)
            overhead = int(np.median(r[:, 0, 1]))
            predict, score = r[:, 1, 1] - overhead, r[:, 2, 1] - overhead
            twin_labels = DeviceTwin(dev).predict(pts)
            assert np.array_equal(r[:, 1, 2], twin_labels), "AVR labels differ from the float32 twin"
            assert np.all(r[:, 2, 2] == 0), "score returned a non-OK status"
            results[kind] = (predict, score)
            print(f"  {kind:5s} ({len(pts):3d} points)  predict median {int(np.median(predict)):7d}  worst {predict.max():7d}"
                  f"   score median {int(np.median(score)):7d}  worst {score.max():7d}   labels == twin")
    allp = np.concatenate([p for p, _ in results.values()])
    ops = unpruned_ops(m.n_components, m.n_features, m.covariance_type)
    em_p, em_s = EMLEARN.get(name, (None, None))
    tp, tw, ts = TARGETS.get(name, (None, None, None))
    print(f"  references: emlearn predict {em_p}, score {em_s}; unpruned {ops} float ops x {CYCLES_PER_FLOAT_OP}"
          f" = {ops * CYCLES_PER_FLOAT_OP}")
    pm, sm = int(np.median(results["model"][0])), int(np.median(results["model"][1]))
    if tp:
        print(f"  targets: predict median <= {tp}: {pm} {'ok' if pm <= tp else 'MISSED'}; worst <= {tw}: {allp.max()} "
              f"{'ok' if allp.max() <= tw else 'MISSED'}; score median <= {ts}: {sm} {'ok' if sm <= ts else 'MISSED'}")
    k = lambda v: f"{v / 1000:.1f}k" if v < 100_000 else f"{v / 1000:.0f}k"  # noqa: E731
    return (f"| {name}: {m.covariance_type}, K={m.n_components}, D={m.n_features} | {k(pm)} / {k(int(allp.max()))} | {k(sm)} "
            f"| {report.flash / 1000:.1f} KB / {report.ram} B | {k(em_p) if em_p else '-'} / {k(em_s) if em_s else '-'} "
            f"| {f'{k(tp)} / {k(tw)} / {k(ts)}' if tp else '-'} |")


# -- CPU classes in QEMU, with emlearn side by side ---------------------------------------------

# The targets on every class and both models: emlearn's instructions over tinygmm's.
CLASS_TARGETS = {"mall": (2.0, 1.5), "blobs16x8": (4.0, 1.5)}  # predict, score


def emlearn_code(m: Model) -> tuple[str, Path] | None:
    """emlearn's generated C for the same mixture (emlearn turns every covariance type into full
    precision matrices), named bench_eml, and its include folder; None without emlearn."""
    saved = np.geterr()
    try:
        import emlearn  # sets numpy.seterr(all='raise') for the whole process on import
    except ImportError:
        return None
    finally:
        np.seterr(**saved)
    from sklearn.mixture import GaussianMixture as SkGaussianMixture
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    sk = SkGaussianMixture(m.n_components, covariance_type=m.covariance_type)
    sk.weights_, sk.means_, sk.covariances_ = m.weights, m.means, m.covariances
    sk.precisions_cholesky_ = _compute_precision_cholesky(m.covariances, m.covariance_type)
    try:
        code = emlearn.convert(sk, method="inline").save(name="bench_eml")
    finally:
        np.seterr(**saved)
    return code, Path(emlearn.includedir)


def _in_flash(env: str, elf: Path) -> dict[str, int]:
    """Bytes of the model's arrays (symbols gmm_model*) by the ELF section holding them."""
    from bare_build import get_board, manifest

    prefix = manifest(get_board(env))["toolchain"]
    out = subprocess.run([f"{prefix}-objdump", "-t", str(elf)], capture_output=True, text=True, check=True).stdout
    sections: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[-1].startswith("gmm_model"):
            sections[parts[-3]] = sections.get(parts[-3], 0) + int(parts[-2], 16)
    return sections


def bench_class(env: str, name: str, m: Model, X: np.ndarray, n: int, keep: Path | None) -> str:
    """Instructions of predict and score on the CPU class ``env``, tinygmm and emlearn in one program."""
    from bare_build import build_bare, run_bare

    dev = fold(m)
    eml = emlearn_code(m)
    rng = np.random.default_rng(0)
    sets = point_sets(m, X, n, rng)
    pts = np.vstack(list(sets.values())).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="tinygmm-bench-") as t:
        tmp = keep / env if keep else Path(t)
        tmp.mkdir(parents=True, exist_ok=True)
        header = write_header(dev, tmp / "model.h", "gmm_model")
        (tmp / "points.h").write_text(points_header(pts, progmem=""))
        defines = [f'BENCH_MODEL_HEADER="{header}"', f'BENCH_POINTS_HEADER="{tmp / "points.h"}"']
        includes = [firmware_dir() / "lib" / "tinygmm"]
        if eml is not None:
            (tmp / "eml_model.h").write_text(eml[0])
            defines.append(f'BENCH_EMLEARN_HEADER="{tmp / "eml_model.h"}"')
            includes.append(eml[1])
        # emlearn's code promotes to double and compares signed with unsigned: its warnings are not ours
        elf = build_bare(env, [firmware_dir() / "dev" / "bare_bench.c"], tmp / "bench.elf", defines, includes,
                         warnings_fatal=eml is None)
        rows = np.array([[int(v) for v in line.split()] for line in run_bare(env, elf, timeout=600)], dtype=np.int64)
        flash = _in_flash(env, elf)
    assert rows.shape == (len(pts), 7), rows.shape
    empty = rows[:, 0]
    predict, score = rows[:, 1] - empty, rows[:, 3] - empty
    twin = DeviceTwin(dev).predict(pts)
    assert np.array_equal(rows[:, 2], twin), f"{env}: labels differ from the float32 twin"
    ops = unpruned_ops(m.n_components, m.n_features, m.covariance_type)
    med = lambda v: int(np.median(v))  # noqa: E731
    drawn = slice(0, len(sets["model"]))
    line = (f"  {env:10s} tinygmm predict {med(predict[drawn]):7d} / {predict.max():7d}  "
            f"score {med(score[drawn]):7d} / {score.max():7d}")
    k = lambda v: f"{v / 1000:.1f}k" if v < 100_000 else f"{v / 1000:.0f}k"  # noqa: E731
    cells = [env, f"{name}: K={m.n_components}, D={m.n_features}", f"{k(med(predict[drawn]))} / {k(int(predict.max()))}",
             f"{k(med(score[drawn]))} / {k(int(score.max()))}"]
    if eml is not None:
        ep, es = rows[:, 4] - empty, rows[:, 6] - empty
        rp, rs = np.median(ep[drawn]) / np.median(predict[drawn]), np.median(es[drawn]) / np.median(score[drawn])
        tp, ts = CLASS_TARGETS.get(name, (0.0, 0.0))
        wrong = int(np.sum(rows[:, 5] != twin))
        line += (f"   emlearn predict {med(ep[drawn]):7d} / {ep.max():7d}  score {med(es[drawn]):7d} / {es.max():7d}"
                 f"   x{rp:.1f} (target {tp:g}: {'ok' if rp >= tp else 'MISSED'}), "
                 f"x{rs:.1f} (target {ts:g}: {'ok' if rs >= ts else 'MISSED'}); emlearn labels != twin: {wrong}")
        cells += [f"{k(med(ep[drawn]))} / {k(int(ep.max()))}", f"{k(med(es[drawn]))} / {k(int(es.max()))}",
                  f"{rp:.1f}x / {rs:.1f}x"]
    else:
        cells += ["-", "-", "-"]
    print(line)
    where = ", ".join(f"{b} B in {sec}" for sec, b in flash.items())
    print(f"  {'':10s} model data {dev.parameter_bytes} B, packed minimum {4 * packed_minimum(m)} B ({where}, with "
          f"the struct); unpruned float ops {ops}")
    cells += [f"{dev.parameter_bytes} B in {'/'.join(flash)}", str(ops)]
    return "| " + " | ".join(cells) + " |"


def bench_classes(envs: list[str], n: int, keep: Path | None) -> list[str]:
    models = [("mall", *mall_model())] if MALL_CSV.is_file() else []
    models.append(("blobs16x8", *blobs_model()))
    rows = []
    for name, m, X in models:
        print(f"\n== {name}: {m.covariance_type}, K={m.n_components}, D={m.n_features}: instructions per call, "
              "median over model samples / worst over samples, box and far points ==")
        rows += [bench_class(env, name, m, X, n, keep) for env in envs]
    return rows


def main(argv: list[str] | None = None) -> int:
    from tinygmm.project.boards import BOARDS

    classes = [b.env for b in BOARDS.values() if b.stand_in]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=200, help="points per set (model, box); far uses 8")
    ap.add_argument("--keep", type=Path, help="keep the generated firmware in this folder")
    ap.add_argument("--classes", default=",".join(classes), help=f"CPU classes to run (default: {','.join(classes)})")
    ap.add_argument("--no-avr", action="store_true", help="skip the ATmega328P in simavr")
    args = ap.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    if not args.no_avr:
        with tempfile.TemporaryDirectory(prefix="tinygmm-runner-") as t:
            runner = Path(t) / "simavr_cycles"
            subprocess.run(["gcc", "-O2", "-I/usr/include/simavr", str(firmware_dir() / "dev" / "simavr_cycles.c"),
                            "-lsimavr", "-lutil", "-o", str(runner)], check=True)
            rows = []
            if MALL_CSV.is_file():
                rows.append(bench("mall", *mall_model(), args.points, runner, args.keep))
            else:
                print(f"{MALL_CSV} not found: skipping the Mall Customers model", file=sys.stderr)
            rows.append(bench("blobs16x8", *blobs_model(), args.points, runner, args.keep))
            rows.append(bench("blobs16x8-tied", *blobs_model("tied"), args.points, runner, args.keep))
        print("\n| model | predict median / worst | score median | flash / RAM | emlearn predict / score | targets |")
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))
    envs = [e for e in args.classes.split(",") if e]
    if envs:
        rows = bench_classes(envs, args.points, args.keep)
        print("\n| class | model | predict median / worst | score median / worst | emlearn predict | emlearn score "
              "| emlearn / tinygmm (medians) | model data | unpruned float ops |")
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
