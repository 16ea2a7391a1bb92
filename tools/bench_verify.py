"""``tools/bench.py verify``: what proving a dataset costs, against building it and against
hashing its bytes, measured in one run on the same dataset.

The hashing bound is what no verify can beat: every shard's bytes hashed once with sha256 in
as many processes as verify uses -- by ``sha256sum`` (coreutils; what a user would run) and
by Python's ``hashlib`` (OpenSSL: the library verify hashes with). Each verify is run as the
command a user types (``fgbg verify``: interpreter start, imports and worker processes
included), page cache warm, best of three.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

__all__ = ["bench_verify"]


def _best(fn: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return best


def _hash_files(paths: list[str]) -> int:
    for p in paths:
        with open(p, "rb") as f:
            hashlib.file_digest(f, "sha256")
    return len(paths)


def _fgbg(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "fgbg.builder", *args], capture_output=True, text=True)
    if done.returncode not in (0,):
        raise SystemExit(f"fgbg {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")


def bench_verify(n_samples: int, work: Path, workers: int) -> None:
    """build vs verify vs verify --decode vs verify --deep vs the hashing bound."""
    from fgbg.builder.demo import write_demo_inputs

    n_bg, n_fg = 20, 50
    placements = max(1, n_samples // (n_bg * n_fg * 2))
    n = n_bg * n_fg * 2 * placements
    bg, fg = write_demo_inputs(work / "inputs", n_bg, n_fg)
    out = work / "ds"
    t = time.perf_counter()
    _fgbg("build", "--bg", str(bg), "--fg", str(fg), "--out", str(out), "--placements", str(placements),
          "--shard-size", "1000", "--workers", str(workers), "--no-progress")
    build_s = time.perf_counter() - t
    shards = sorted(str(p) for p in (out / "shards").glob("*.tar"))
    size = sum(Path(p).stat().st_size for p in shards)
    parts = [shards[w::workers] for w in range(workers)]
    _hash_files(shards)  # the page cache warm for everyone
    rows: list[tuple[str, float]] = []
    if shutil.which("sha256sum"):
        def coreutils() -> None:
            procs = [subprocess.Popen(["sha256sum", *part], stdout=subprocess.DEVNULL) for part in parts]
            for p in procs:
                p.wait()
        rows.append((f"hashing bound: `sha256sum` of every shard, {workers} processes", _best(coreutils)))
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_hash_files, [[p] for p in shards[:workers]]))  # started
        rows.append((f"hashing bound: `hashlib` sha256 of every shard, {workers} processes",
                     _best(lambda: list(pool.map(_hash_files, parts)))))
    bound = rows[0][1]
    w = ["--workers", str(workers)]
    rows.append(("`fgbg verify` (bytes: sha256, layout, digests, annotations vs plan and index)",
                 _best(lambda: _fgbg("verify", str(out), *w))))
    rows.append(("`fgbg verify --decode` (also every image, mask and depth map decoded)",
                 _best(lambda: _fgbg("verify", "--decode", str(out), *w))))
    rows.append(("`fgbg verify --deep` (also every mask repainted from its annotation)",
                 _best(lambda: _fgbg("verify", "--deep", str(out), *w))))
    rows.append((f"`fgbg build` of the same dataset, {workers} workers (once)", build_s))
    print(f"\nverify: {n} samples in {len(shards)} tar shards, {size / 2**20:.0f} MiB, {workers} processes, "
          "page cache warm, best of 3\n")
    print("| what | seconds | x the first hashing bound |")
    print("|---|---|---|")
    for what, s in rows:
        print(f"| {what} | {s:.2f} | {s / bound:.2f} |")
    print("\ngoal: default verify within 1.3x of the hashing bound")
