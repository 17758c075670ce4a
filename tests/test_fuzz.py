"""The protocol under libFuzzer with ASan and UBSan (bench/fuzz_proto.py runs it for ten minutes):
a short run finds nothing, and the harness does find a protocol that leaves a reply half-written."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import require

import fuzz_proto as fuzz  # bench/ (conftest puts it on the path)
# Seconds of fuzzing in the suite: enough to pass every seed through every command path.
SUITE_SECONDS = 20


@pytest.fixture(scope="module")
def fuzzer_available(tmp_path_factory) -> None:
    probe = tmp_path_factory.mktemp("probe")
    require(shutil.which("clang") is not None, f"needs clang and libFuzzer: apt-get install {fuzz.PACKAGES}")
    (probe / "t.c").write_text("#include <stddef.h>\n#include <stdint.h>\n"
                               "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
    import subprocess

    ok = subprocess.run(["clang", fuzz.SANITIZERS, str(probe / "t.c"), "-o", str(probe / "t")],
                        capture_output=True).returncode == 0
    require(ok, f"clang cannot link libFuzzer: apt-get install {fuzz.PACKAGES}")


def test_a_short_fuzz_run_finds_nothing(fuzzer_available, tmp_path: Path) -> None:
    exe = fuzz.build(tmp_path)
    result = fuzz.run(exe, fuzz.seed_corpus(tmp_path / "corpus"), SUITE_SECONDS, tmp_path / "crashes")
    print(f"\n{result.executions:,} inputs, {result.per_second:,.0f}/s, corpus {result.corpus}")
    assert not result.crashed, result.output[-3000:]
    assert result.executions > 10_000 and result.corpus > 30


def test_the_harness_catches_a_reply_left_half_written(fuzzer_available, tmp_path: Path) -> None:
    broken = tmp_path / "tinygmm_proto"
    shutil.copytree(fuzz.PROTO_DIR, broken)
    reply = broken / "tp_reply.c"
    text = reply.read_text()
    assert "    out_raw(p, '\\n');\n    out_flush(p);\n" in text
    reply.write_text(text.replace("    out_raw(p, '\\n');\n    out_flush(p);\n", "    out_raw(p, '\\n');\n"))
    exe = fuzz.build(tmp_path, proto_dir=broken)
    result = fuzz.run(exe, fuzz.seed_corpus(tmp_path / "corpus"), 10, tmp_path / "crashes")
    # one of the harness's own checks fires (a reply left unflushed, or the ping after it unanswered)
    assert result.crashed and ("half-written" in result.output or "not answered last" in result.output)
    assert any((tmp_path / "crashes").iterdir())
