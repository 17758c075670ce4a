"""Fuzz the serial protocol with libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer.

Builds firmware/dev/fuzz_proto.c (the protocol core around the repository's demo model) with
Debian's clang, seeds a corpus with well-formed requests of every command, runs it for the given
time and prints executions per second, the corpus reached and any finding (a crash input is kept
in the output folder). With llvm-cov present, also the share of the protocol's lines the corpus
reaches. tests/test_fuzz.py runs it briefly; the long run is this script:

    python bench/fuzz_proto.py [--seconds 600] [--out DIR]

Needs: apt-get install clang libclang-rt-14-dev (llvm for the coverage figure).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinygmm.link.protocol import batch_request, frame, vector_text
from tinygmm.resources import firmware_dir

PACKAGES = "clang libclang-rt-14-dev"
FLAGS = ("-g", "-O1", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off")
SANITIZERS = "-fsanitize=fuzzer,address,undefined"


PROTO_DIR = firmware_dir() / "lib" / "tinygmm_proto"


def proto_sources(proto_dir: Path = PROTO_DIR) -> list[Path]:
    return sorted(proto_dir.glob("*.c"))


def _includes(proto_dir: Path) -> list[str]:
    fw = firmware_dir()
    return [f"-I{fw / 'lib' / 'tinygmm'}", f"-I{proto_dir}", f"-I{fw / 'include'}"]


def build(out_dir: Path, coverage: bool = False, proto_dir: Path = PROTO_DIR) -> Path:
    """The fuzzer (or, with ``coverage``, a coverage-instrumented build of it) around the protocol
    sources in ``proto_dir``."""
    clang = shutil.which("clang")
    if clang is None:
        raise RuntimeError(f"clang not found: apt-get install {PACKAGES}")
    exe = out_dir / ("fuzz_proto_cov" if coverage else "fuzz_proto")
    extra = ["-fprofile-instr-generate", "-fcoverage-mapping"] if coverage else []
    cmd = [clang, *FLAGS, SANITIZERS, *extra, *_includes(proto_dir), str(firmware_dir() / "dev" / "fuzz_proto.c"),
           *map(str, proto_sources(proto_dir)), "-lm", "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building the fuzzer failed ({' '.join(cmd)}):\n{proc.stderr}")
    return exe


def seed_corpus(folder: Path) -> Path:
    """Well-formed requests of every command, human-mode lines and a little garbage."""
    folder.mkdir(parents=True, exist_ok=True)
    x = np.array([[1.5, -2.0]], dtype=np.float32)
    requests = ["ping abc", "hello", "info", "help", f"predict {vector_text(x[0])}", f"score {vector_text(x[0])}",
                f"log_joint {vector_text(x[0])}", f"proba {vector_text(x[0])}", f"anomaly {vector_text(x[0])}",
                batch_request("predict", np.repeat(x, 5, axis=0)), batch_request("proba", x),
                f"bench predict 3 {vector_text(x[0])}"]
    seeds = [frame(i + 1, r) for i, r in enumerate(requests)]
    seeds += [b"predict 1.5 -2\n", b"help\n", b"25 80\n", b"\x00\xff garbage \r\n", b"9" * 700 + b"\n",
              b"proba -1e30 .5\r", b"-1.5 00000001\n", b"log_joint 7f7fffff 1e-40\n"]  # human: decimals out
    for i, s in enumerate(seeds):
        (folder / f"seed{i:02d}").write_bytes(s)
    return folder


@dataclass
class Run:
    seconds: float
    executions: int
    corpus: int
    crashed: bool
    output: str

    @property
    def per_second(self) -> float:
        return self.executions / self.seconds if self.seconds else 0.0


def run(exe: Path, corpus: Path, seconds: float, artifacts: Path) -> Run:
    """libFuzzer for ``seconds`` from ``corpus`` (grown in place); a crash input lands in ``artifacts``."""
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [str(exe), str(corpus), f"-max_total_time={int(seconds)}", "-print_final_stats=1", "-max_len=4096",
           f"-artifact_prefix={artifacts}/", "-timeout=10", "-rss_limit_mb=1024"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    text = proc.stdout + proc.stderr
    execs = int(m.group(1)) if (m := re.search(r"stat::number_of_executed_units:\s+(\d+)", text)) else 0
    took = float(m.group(1)) if (m := re.search(r"Done \d+ runs in (\d+) second", text)) else seconds
    corpus_n = sum(1 for _ in corpus.iterdir())
    return Run(took, execs, corpus_n, proc.returncode != 0, text)


def line_coverage(out_dir: Path, corpus: Path) -> str | None:
    """'N% of M lines' of the protocol sources reached by the corpus, or None without llvm tools."""
    profdata = shutil.which("llvm-profdata") or shutil.which("llvm-profdata-14")
    cov = shutil.which("llvm-cov") or shutil.which("llvm-cov-14")
    if profdata is None or cov is None:
        return None
    exe = build(out_dir, coverage=True)
    raw = out_dir / "fuzz.profraw"
    subprocess.run([str(exe), "-runs=0", str(corpus)], env={"LLVM_PROFILE_FILE": str(raw)}, capture_output=True)
    data = out_dir / "fuzz.profdata"
    subprocess.run([profdata, "merge", "-sparse", str(raw), "-o", str(data)], check=True)
    report = subprocess.run([cov, "report", str(exe), f"-instr-profile={data}", *map(str, proto_sources())],
                            capture_output=True, text=True, check=True).stdout
    total = report.strip().splitlines()[-1].split()
    # TOTAL regions missed cover functions missed executed lines missed cover ...
    return f"{total[9]} of {total[7]} lines"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--out", type=Path, help="keep the build, corpus and any crash input here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinygmm-fuzz-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        exe = build(out)
        corpus = seed_corpus(out / "corpus")
        result = run(exe, corpus, args.seconds, out / "crashes")
        print(f"{result.executions:,} inputs in {result.seconds:.0f} s = {result.per_second:,.0f}/s; "
              f"corpus {result.corpus} inputs")
        coverage = line_coverage(out, corpus)
        if coverage:
            print(f"protocol lines reached by the corpus: {coverage}")
        if result.crashed:
            print(result.output[-4000:], file=sys.stderr)
            print(f"FINDING: the fuzzer stopped on a failure; inputs in {out / 'crashes'}"
                  + ("" if args.out else " (pass --out DIR to keep them)"))
            sys.exit(1)
        print("no finding")


if __name__ == "__main__":
    main()
