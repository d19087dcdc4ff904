#!/usr/bin/env python3
"""launch/plot.py end to end: a real run file and two small sweep files from the capscale binary,
plotted to PNGs that must exist, be valid and not be blank; bad files must give exit 2 and one line.
Sweep plots draw the file's /analysis tables only: a sweep file without them is refused, and
plot.py holds no best-plan or interpolation logic of its own (checked on its source).

  python3 tests/plot/test_plot.py PATH/TO/capscale      (CTest passes the interpreter it found)

Exit 0 pass, 1 fail, 77 skip (this interpreter lacks h5py or matplotlib).
"""
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLOT = os.path.join(REPO, "launch", "plot.py")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 10_000

# Explicit plans rather than `plans: search` keep each sweep well under a second.
SWEEP_TARGETS = """\
name: plot-test-targets
models: [llama3.1-8b]
targets: [h200, h20, h800]
gpus: [8, 16, 32, 64]
global_batch_size_per_gpu: 1
min_global_batch_size: 16
plans:
  - {tp: 8, pp: 1, micro_batch_size: 1}
  - {tp: 4, pp: 2, micro_batch_size: 1}
reference: {target: h200, gpus: 16}
"""
SWEEP_CAPS = """\
name: plot-test-caps
models: [llama3.1-8b]
cap_sweep: {chip: h200, key: nvlink, values: [900, 400, 100]}
gpus: [8, 32]
global_batch_size: 32
plans:
  - {tp: 8, pp: 1, micro_batch_size: 1}
"""

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def run(cmd, timeout=120):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                          env=dict(os.environ, MPLBACKEND="Agg"))


def capscale(binary, args, what):
    p = run([binary] + args)
    if not check(p.returncode == 0, f"{what}: capscale exits 0 (got {p.returncode})"):
        print(p.stderr[-2000:])
        return False
    return True


def check_pngs(h5, out_dir, expected_suffixes):
    p = run([sys.executable, PLOT, h5, "--out", out_dir])
    name = os.path.basename(h5)
    if not check(p.returncode == 0, f"plot.py {name} exits 0 (got {p.returncode})"):
        print(p.stderr[-2000:])
        return
    paths = [line.strip() for line in p.stdout.splitlines() if line.strip()]
    for suffix in expected_suffixes:
        check(any(x.endswith(suffix) for x in paths), f"plot.py {name} wrote a *{suffix} (printed: {paths})")
    import matplotlib.image
    import numpy as np
    for path in paths:
        base = os.path.basename(path)
        if not check(os.path.isfile(path), f"{base} exists"):
            continue
        size = os.path.getsize(path)
        check(size > MIN_PNG_BYTES, f"{base} is > {MIN_PNG_BYTES} bytes ({size})")
        with open(path, "rb") as f:
            check(f.read(8) == PNG_SIGNATURE, f"{base} has the PNG signature")
        try:
            img = matplotlib.image.imread(path)
        except Exception as e:  # noqa: BLE001 - any failure to decode is a test failure
            check(False, f"{base} decodes ({e})")
            continue
        pixels = img.reshape(-1, img.shape[-1]) if img.ndim == 3 else img.reshape(-1, 1)
        check(pixels.shape[0] > 100 * 100, f"{base} is at least 100x100 pixels ({img.shape})")
        check(bool((pixels != pixels[0]).any()), f"{base} is not a single colour")
        # A real chart has more than background and one fill: text, axes, bars, lines.
        check(len(np.unique(pixels, axis=0)) > 8, f"{base} has more than a few colours")


def check_bad(path, what, out_dir):
    p = run([sys.executable, PLOT, path, "--out", out_dir], timeout=60)
    lines = p.stderr.strip().splitlines()
    check(p.returncode == 2, f"{what}: exit 2 (got {p.returncode})")
    check(len(lines) == 1, f"{what}: one stderr line (got {len(lines)}: {p.stderr.strip()[:300]!r})")
    check("Traceback" not in p.stderr, f"{what}: no traceback")
    check(bool(lines) and lines[0].startswith("plot.py: error: ") and path in lines[0],
          f"{what}: message names the file ({lines[:1]})")


def check_draws_only(sweep_h5, out_dir):
    """plot.py draws /analysis: without it a sweep is refused, and it computes none of it itself."""
    import h5py
    stripped = sweep_h5.replace(".h5", "_no_analysis.h5")
    with open(sweep_h5, "rb") as src, open(stripped, "wb") as dst:
        dst.write(src.read())
    with h5py.File(stripped, "a") as f:
        del f["analysis"]
    check_bad(stripped, "sweep without /analysis", out_dir)
    p = run([sys.executable, PLOT, stripped, "--out", out_dir], timeout=60)
    check("/analysis" in p.stderr and "capscale report" in p.stderr,
          f"sweep without /analysis: message names /analysis and capscale report ({p.stderr.strip()[:200]!r})")
    with open(PLOT) as f:
        src = f.read()
    for banned in ("math.log", "log2(", "chips_to_match", "best_by", "yaml"):
        check(banned not in src, f"plot.py holds no analysis of its own (no {banned!r})")


def main():
    if len(sys.argv) != 2:
        print("usage: test_plot.py PATH/TO/capscale", file=sys.stderr)
        return 1
    binary = os.path.abspath(sys.argv[1])
    try:
        import h5py
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.image  # noqa: F401
    except ImportError as e:
        print(f"skip: {sys.executable} lacks {e.name} (Debian: python3-h5py python3-matplotlib)")
        return 77
    if not os.access(binary, os.X_OK):
        print(f"FAIL capscale binary {binary} is not executable")
        return 1

    with tempfile.TemporaryDirectory(prefix="capscale-plot-") as tmp:
        out = os.path.join(tmp, "png")

        run_h5 = os.path.join(tmp, "run.h5")
        if capscale(binary, ["run", "--model", "tiny-gpt", "--backend", "cpu", "--steps", "1", "--warmup", "0",
                             "--emulate", "h200,h20", "--out", run_h5], "run"):
            check_pngs(run_h5, out, ["run_breakdown.png", "run_tokens_per_chip.png"])

        for text, name, suffixes in [
            (SWEEP_TARGETS, "targets", ["_scaling.png", "_equivalence.png"]),
            (SWEEP_CAPS, "caps", ["_scaling.png", "_cap_nvlink.png"]),
        ]:
            yaml_path = os.path.join(tmp, f"{name}.yaml")
            h5 = os.path.join(tmp, f"sweep_{name}.h5")
            with open(yaml_path, "w") as f:
                f.write(text)
            if capscale(binary, ["sweep", yaml_path, "--out", h5], f"sweep {name}"):
                check_pngs(h5, out, [f"sweep_{name}{s}" for s in suffixes])
                if name == "targets":
                    check_draws_only(h5, out)

        garbage = os.path.join(tmp, "garbage.h5")
        with open(garbage, "wb") as f:
            f.write(b"this is not HDF5\n" * 200 + bytes(range(256)) * 8)
        check_bad(garbage, "garbage file", out)

        foreign = os.path.join(tmp, "foreign.h5")
        with h5py.File(foreign, "w") as f:
            f["x"] = [1, 2, 3]
        check_bad(foreign, "HDF5 without schema_version", out)

        if os.path.exists(run_h5):
            future = os.path.join(tmp, "future.h5")
            with open(run_h5, "rb") as src, open(future, "wb") as dst:
                dst.write(src.read())
            with h5py.File(future, "a") as f:
                f.attrs["schema_version"] = 99
            check_bad(future, "schema_version 99", out)

            truncated = os.path.join(tmp, "truncated.h5")
            with open(run_h5, "rb") as src, open(truncated, "wb") as dst:
                data = src.read()
                dst.write(data[: len(data) // 2])
            check_bad(truncated, "truncated run file", out)

    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
