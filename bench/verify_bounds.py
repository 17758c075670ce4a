"""No false FAIL at scale: a device computing exactly as the float32 twin, through every check of
`tinygmm verify`, on random models and the vector kinds verify uses, for a million points or more.

Random models (tests/_gmm_cases.random_model): every covariance type in turn, D 1..16, K 1..32,
features scaled by 10^U(-3, 3) or not, offsets 0, 10, 1e3 or 1e5, near-singular covariances
(condition ~1e7..1e9) or not, a scaler or not, an anomaly threshold. For each, the vectors
`tinygmm export` makes (training rows drawn from the model, samples, a box, points 10x and 1000x
the span away, decision boundaries, extreme floats, NaN/Inf), compared as `tinygmm verify` does.

Prints, per check, the largest error as a share of its bound (over all vectors, and per kind), the
model where it occurred, and for tied models the share of the certificate bound that backs predict
(the linear-score difference against ``_tied_linear_bound``); exits 1 if any check failed.

    python bench/verify_bounds.py [--points 1000000] [--n-each 400] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _gmm_cases import COVARIANCE_TYPES, random_model, sample  # noqa: E402

from tinygmm.device.fold import fold  # noqa: E402
from tinygmm.device.twin import DeviceTwin, _tied_linear_bound  # noqa: E402
from tinygmm.verify.compare import CHECK_NAMES, Reference, compare_by_kind, error_share, twin_answers  # noqa: E402
from tinygmm.verify.vectors import KINDS, make_vectors  # noqa: E402

# Offsets drawn for the features (raw units), up to the 1e5.
OFFSETS = (0.0, 10.0, 1e3, 1e5)
TIED_CERTIFICATE = "predict (tied): linear-score difference against _tied_linear_bound"
# Probabilities whose bound is below this are resolved (the diagnostic row); those whose bound
# admits every answer in [0, 1] (>= max(p, 1 - p)) are counted.
PROBA_RESOLVED = 0.01
PROBA_INFORMATIVE = f"proba where the bound is below {PROBA_RESOLVED:g}"


def draw_case(seed: int) -> tuple[str, int, int, dict]:
    rng = np.random.default_rng(seed)
    options = dict(bad_scaling=bool(rng.integers(2)), offset=float(rng.choice(OFFSETS)),
                   near_singular=bool(rng.integers(2)), scaler=bool(rng.integers(2)))
    return COVARIANCE_TYPES[seed % len(COVARIANCE_TYPES)], int(rng.integers(1, 33)), int(rng.integers(1, 17)), options


def tied_certificate_share(dev, X: np.ndarray, ref: Reference) -> float:
    """Largest |2 (t_top - t_k) - gap_k| / bound over rivals, t the twin's linear scores, gap float64's."""
    twin = DeviceTwin(dev)
    ok = np.flatnonzero(ref.twin.status_predict == 0)
    if not len(ok) or dev.n_components == 1:
        return 0.0
    status, z = twin._prepare(X[ok])
    with np.errstate(invalid="ignore", over="ignore"):
        t = twin._linear_score(z).astype(np.float64)
        top, gap = ref.top[ok], ref.gap[ok]
        n = np.arange(len(ok))
        err = np.abs(2 * (t[n, top][:, None] - t) - gap)
        share = error_share(err, _tied_linear_bound(dev, X[ok], top))
    share[n, top] = 0.0
    # an overflowed score (-inf, far beyond float32's range) is below every finite one: not an error
    share[~np.isfinite(t) | ~np.isfinite(t[n, top])[:, None]] = 0.0
    return float(np.nanmax(share, initial=0.0))


def informative_proba_share(ref: Reference) -> tuple[float, int, int]:
    """(largest error / bound among the probabilities whose bound is below PROBA_RESOLVED, entries,
    entries whose bound admits any answer). Where the float32 log-joints cannot resolve the
    posteriors (far points, near-singular models) the bound approaches max(p, 1 - p) and a device
    may legitimately answer near 0 or 1: the worst share over all entries then nears 1."""
    ok = ref.twin.status_proba == 0
    p, bound = ref.proba[ok], ref.proba_bound[ok]
    err = np.abs(ref.twin.proba[ok].astype(np.float64) - p)
    share = error_share(err, bound)
    vacuous = int(np.sum(bound >= np.maximum(p, 1 - p)))
    return float(np.max(share[bound < PROBA_RESOLVED], initial=0.0)), int(p.size), vacuous


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000, help="stop after this many vectors (default 1e6)")
    ap.add_argument("--n-each", type=int, default=400, help="vectors of each kind per model (default 400)")
    ap.add_argument("--seed", type=int, default=0, help="first model seed (default 0)")
    args = ap.parse_args()

    worst = {name: (0.0, "", None) for name in [*CHECK_NAMES, PROBA_INFORMATIVE, TIED_CERTIFICATE]}  # share, kind, case
    proba_entries = proba_vacuous = 0
    by_kind: dict[str, dict[str, float]] = {name: {} for name in CHECK_NAMES}
    failures: dict[str, int] = {name: 0 for name in CHECK_NAMES}
    first_failures: list[str] = []
    n_points = n_models = 0
    per_type = dict.fromkeys(COVARIANCE_TYPES, 0)
    start = time.perf_counter()
    seed = args.seed
    while n_points < args.points:
        ct, K, D, options = draw_case(seed)
        case = (seed, ct, K, D, options)
        m = random_model(np.random.default_rng(seed), ct, K, D, **options)
        vectors = make_vectors(m, sample(m, np.random.default_rng(seed), args.n_each), n_each=args.n_each,
                               seed=seed)
        dev = fold(m)
        ref = Reference.of(dev, vectors.X)
        for kind, checks in compare_by_kind(dev, vectors, twin_answers(ref.twin), ref).items():
            for c in checks:
                failures[c.name] += c.failures
                if c.failures and len(first_failures) < 10:
                    first_failures.append(f"{c.name}: model {case}, vectors {c.examples} ({kind})")
                if c.worst is not None:
                    by_kind[c.name][kind] = max(by_kind[c.name].get(kind, 0.0), c.worst)
                    if c.worst > worst[c.name][0]:
                        worst[c.name] = (c.worst, kind, case)
        share, entries, vacuous = informative_proba_share(ref)
        proba_entries, proba_vacuous = proba_entries + entries, proba_vacuous + vacuous
        if share > worst[PROBA_INFORMATIVE][0]:
            worst[PROBA_INFORMATIVE] = (share, "", case)
        if ct == "tied":
            share = tied_certificate_share(dev, vectors.X, ref)
            if share > worst[TIED_CERTIFICATE][0]:
                worst[TIED_CERTIFICATE] = (share, "", case)
        n_points += len(vectors.X)
        n_models += 1
        per_type[ct] += 1
        seed += 1
    seconds = time.perf_counter() - start

    print(f"{n_points:,} vectors over {n_models} random models "
          f"({', '.join(f'{ct} {n}' for ct, n in per_type.items())}) in {seconds:.0f} s")
    width = max(len(n) for n in worst)
    print(f"{'check'.ljust(width)}  worst error/bound  (kind)       failures   model (seed, type, K, D, options)")
    for name, (share, kind, case) in worst.items():
        if name.endswith("status equals the twin's"):
            print(f"{name.ljust(width)}  exact                           {failures[name]:>8}")
            continue
        fails = f"{failures[name]:>8}" if name in failures else "       -"
        print(f"{name.ljust(width)}  {share:17.3g}  ({kind or '-':10})  {fails}   {case}")
    print(f"({proba_vacuous:,} of {proba_entries:,} probabilities, {proba_vacuous / max(proba_entries, 1):.2%}, "
          "have a bound that admits any answer)")
    print("\nworst error/bound per kind of vector:")
    kinds = [k for k in KINDS if any(k in v for v in by_kind.values())]
    print(" " * width + "  " + "".join(k.rjust(10) for k in kinds))
    for name, per in by_kind.items():
        if per:
            print(name.ljust(width) + "  " + "".join((f"{per[k]:10.3g}" if k in per else " " * 10) for k in kinds))
    if first_failures:
        print("\nFAILED:\n  " + "\n  ".join(first_failures))
        return 1
    print("\nno bound exceeded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
