"""Reproduce the README's reference-build measurement (issue #2's "done" criterion).

Writes 100 synthetic backgrounds and 100 foregrounds, builds the reference shape
(100 x 100 x 2 flips x 20 placements = 400,000 samples, depth plane, tar) under
``/usr/bin/time -v``, then reruns the finished build (which only verifies receipts), and
prints wall time, peak RSS and size. Usage::

    python tools/reference_build.py --work /tmp/ref [--bg 100 --fg 100 --placements 20]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path


def timed(cmd: list[str]) -> tuple[str, float, int]:
    """Run ``cmd`` under GNU time; return (stdout, wall seconds, peak RSS in kB)."""
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=True)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", r.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    assert wall and rss, r.stderr
    parts = [float(p) for p in wall.group(1).split(":")]
    seconds = sum(v * 60**i for i, v in enumerate(reversed(parts)))
    return r.stdout.strip(), seconds, int(rss.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (inputs and dataset go here)")
    ap.add_argument("--bg", type=int, default=100)
    ap.add_argument("--fg", type=int, default=100)
    ap.add_argument("--placements", type=int, default=20)
    ap.add_argument("--depth", default="plane", help="plane (issue #8 figure 7) or none")
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args()
    fgbg = [sys.executable, "-m", "fgbg.builder"]
    inputs, out = a.work / "inputs", a.work / "ds"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([*fgbg, "demo-inputs", "--out", str(inputs), "--bg", str(a.bg), "--fg", str(a.fg)], check=True)
    cmd = [*fgbg, "build", "--bg", str(inputs / "bg"), "--fg", str(inputs / "fg"), "--out", str(out),
           "--placements", str(a.placements), "--depth", a.depth, "--no-progress"]
    if a.workers:
        cmd += ["--workers", str(a.workers)]
    line, wall, rss = timed(cmd)
    print(line)
    print(f"build: {wall:.1f} s wall, peak RSS {rss / 1024:.0f} MiB")
    line, wall2, rss2 = timed([*fgbg, "build", "--out", str(out), "--no-progress"])
    print(line)
    print(f"rerun of the finished build (verifies every shard's sha256): {wall2:.1f} s, peak RSS {rss2 / 1024:.0f} MiB")
    line, wall3, rss3 = timed([*fgbg, "verify", str(out)])
    print(line)
    print(f"fgbg verify (sizes, sha256, receipts, layout, per-sample digests, annotations vs plan and index): "
          f"{wall3:.1f} s, "
          f"peak RSS {rss3 / 1024:.0f} MiB")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"bytes on disk: {size:,} ({size / 2**30:.2f} GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
