#!/usr/bin/env python3
"""PNG plots from a capscale HDF5 file (schema version 1, docs/hdf5_schema.md).

  launch/plot.py FILE.h5 [--out DIR]

A run file gives the step-time breakdown and tokens/s per chip of every emulated target; a sweep
file gives per-chip scaling curves per model, throughput against the cap value when its targets are
caps of one chip, and, when the sweep names a reference, how many chips of each target match it.
Sweep plots only draw the file's /analysis tables (best plan per point, cliffs, equivalence), which
`capscale sweep` computes with the same code `capscale report` prints from; nothing is chosen or
interpolated here, so the PNGs and the report cannot disagree. A sweep file without /analysis (from
an older capscale, or a .partial still running) is refused with exit 2: `capscale report FILE`
still prints its tables, and re-running (or finishing) the sweep writes /analysis.
Bad input prints one line `plot.py: error: FILE: reason` and exits 2. Prints the PNG paths written.
"""
import argparse
import math
import os
import re
import sys
import textwrap
import warnings

PROG = "plot.py"
SCHEMA_VERSIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)  # docs/hdf5_schema.md: versions 2 to 11 added columns plot.py does not use
NVLINK_NOTE = "NVLink figures: datasheet bidirectional GB/s"
BREAKDOWN = [("compute_s", "compute", "#4C72B0"), ("exposed_comm_s", "exposed comm", "#DD8452"),
             ("bubble_s", "pipeline bubble", "#55A868"), ("other_s", "other", "#8C8C8C")]
# Axis label for each cap key (DESIGN.md "Caps"); NVLink is per chip, datasheet bidirectional.
CAP_LABELS = {
    "nvlink": "NVLink cap [GB/s, datasheet bidirectional]",
    "nic": "NIC cap [Gb/s per GPU]",
    "tflops": "compute cap [dense BF16 TFLOP/s]",
    "hbm_tbps": "HBM bandwidth cap [TB/s]",
    "hbm_gb": "HBM capacity cap [GB]",
    "nvlink_domain": "NVLink domain cap [GPUs]",
}


class InputError(Exception):
    """The file is not something this script can plot; main() prints it as one line, exit 2."""


def die(msg):
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(2)


def import_libs():
    # A sweep still running holds NAME.h5.partial open for writing; without this HDF5's file
    # locking refuses to let us read the rows it has already flushed.
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    warnings.filterwarnings("ignore", category=UserWarning)  # missing glyphs etc.: not errors
    try:
        import numpy
        import h5py
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        die(f"{sys.executable} lacks {e.name or e}; plot.py needs h5py and matplotlib "
            "(Debian/Ubuntu: apt-get install python3-h5py python3-matplotlib, then use /usr/bin/python3)")
    return numpy, h5py, plt


# ---------------------------------------------------------------------------------------------
# Reading: everything is loaded into plain Python structures first, so that any failure caused by
# the file (not HDF5, truncated, wrong schema) is reported as bad input before plotting starts.


def text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "item"):
        v = v.item()
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return str(v)


def read_file(path, h5py):
    if not os.path.exists(path):
        raise InputError("no such file")
    if os.path.isdir(path):
        raise InputError("is a directory")
    if not h5py.is_hdf5(path):
        raise InputError("not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"cannot open as HDF5 (truncated or corrupt?): {one_line(e)}")
    with f:
        if "schema_version" not in f.attrs:
            raise InputError("not a capscale file (no schema_version attribute)")
        try:
            version = int(f.attrs["schema_version"])
        except (TypeError, ValueError):
            raise InputError(f"schema_version {text(f.attrs['schema_version'])!r} is not an integer")
        if version not in SCHEMA_VERSIONS:
            raise InputError(f"unknown schema_version {version} (this plot.py reads versions {SCHEMA_VERSIONS})")
        if "summary" not in f or not isinstance(f["summary"], h5py.Dataset):
            raise InputError("not a capscale file (no /summary table)")
        data = f["summary"][()]
        names = data.dtype.names or ()
        need = ["model", "target", "gpus", "tokens_per_s", "tokens_per_s_per_chip", "step_time_s"] + \
               [c for c, _, _ in BREAKDOWN]
        missing = [c for c in need if c not in names]
        if missing:
            raise InputError(f"/summary lacks column(s) {', '.join(missing)}")
        rows = []
        for r in data:
            row = {n: (text(r[n]) if r[n].dtype.kind in "SUO" else r[n].item()) for n in names}
            row.setdefault("status", "ok")
            rows.append(row)
        kind = text(f.attrs["kind"]) if "kind" in f.attrs else ("run" if "ops" in f else "sweep")
        summary_attrs = {k: float(v) for k, v in f["summary"].attrs.items()
                         if k in ("engine_step_s", "measured_step_s", "engine_error")}
        analysis = read_analysis(f, h5py) if kind == "sweep" else None
    for r in rows:
        for c in need[2:]:
            if not isinstance(r[c], (int, float)) or not math.isfinite(r[c]):
                raise InputError(f"/summary column {c} holds a non-number ({r[c]!r}) for {r['target']}")
    return {"kind": kind, "rows": rows, "summary_attrs": summary_attrs, "analysis": analysis}


def table_rows(ds):
    data = ds[()]
    names = data.dtype.names or ()
    return [{n: (text(r[n]) if r[n].dtype.kind in "SUO" else r[n].item()) for n in names} for r in data]


ANALYSIS_COLUMNS = {
    "scaling": ["model", "target", "gpus", "ok", "tokens_per_s", "tokens_per_s_per_chip"],
    "cliffs": ["model", "gpus", "baseline_target", "target", "fraction"],
    "equivalence": ["model", "target", "reference_target", "reference_gpus", "reference_tokens_per_s",
                    "grid_gpus", "chips", "ratio", "how"],
}


def read_analysis(f, h5py):
    """The /analysis tables (docs/hdf5_schema.md) as lists of dicts; InputError when absent."""
    if "analysis" not in f:
        raise InputError("no /analysis tables (a sweep written by an older capscale, or one still running): "
                         "`capscale report FILE` prints its tables; re-run or finish the sweep to plot it")
    g = f["analysis"]
    out = {}
    for name, need in ANALYSIS_COLUMNS.items():
        if name not in g or not isinstance(g[name], h5py.Dataset):
            raise InputError(f"/analysis lacks its {name} table")
        rows = table_rows(g[name])
        names = g[name].dtype.names or ()
        missing = [c for c in need if c not in names]
        if missing:
            raise InputError(f"/analysis/{name} lacks column(s) {', '.join(missing)}")
        out[name] = rows
    return out


def one_line(e):
    return " ".join(str(e).split()) or type(e).__name__


# ---------------------------------------------------------------------------------------------
# Helpers for plotting.


def time_unit(max_s):
    if max_s >= 1:
        return 1.0, "s"
    if max_s >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def footnote(fig, lines):
    """Small grey notes under the axes; returns the bottom margin (figure fraction) they need."""
    lines = [w for line in lines for w in textwrap.wrap(line, 110)]
    if lines:
        fig.text(0.01, 0.01, "\n".join(lines), fontsize=8, color="#555555", ha="left", va="bottom")
    return 0.02 + 0.03 * len(lines) if lines else 0


def mentions_nvlink(specs):
    return any("nvlink=" in s or "nvlink_domain" in s for s in specs)


def save(fig, plt, out_dir, name, written):
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)


def safe_name(s):
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", s).strip("_") or "_"


def fmt_num(v):
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


# ---------------------------------------------------------------------------------------------
# Run files: one row per target (the host's measured row first).


def plot_run(d, stem, out_dir, np, plt):
    rows = [r for r in d["rows"] if r["status"] == "ok"]
    if not rows:
        raise InputError("/summary has no rows with status ok")
    written = []
    specs = [r["target"] for r in rows]
    notes = [NVLINK_NOTE] if mentions_nvlink(specs) else []
    model = rows[0]["model"]
    gpus = rows[0]["gpus"]
    par = f"tp{rows[0].get('tp', '?')} pp{rows[0].get('pp', '?')} dp{rows[0].get('dp', '?')}"

    # Step-time breakdown. The measured host (a CPU, often) can be 1000x slower than the emulated
    # targets, so it gets its own panel rather than flattening every other bar.
    host = [r for r in rows if r.get("source") == "measured" or r["target"].startswith("host:")]
    targets = [r for r in rows if r not in host]
    panels = []
    if host and targets:
        h_max = max(r["step_time_s"] for r in host)
        t_max = max(r["step_time_s"] for r in targets)
        if max(h_max, t_max) > 10 * min(h_max, t_max):
            panels = [("measured host", host), ("emulated targets", targets)]
    if not panels:
        panels = [("", rows)]
    widths = [max(1, len(p[1])) for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.5, 1.3 * len(rows) + 3), 5.2),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, (title, group) in zip(axes[0], panels):
        scale, unit = time_unit(max(r["step_time_s"] for r in group))
        x = np.arange(len(group))
        bottom = np.zeros(len(group))
        for col, label, colour in BREAKDOWN:
            v = np.array([r[col] for r in group]) * scale
            ax.bar(x, v, bottom=bottom, color=colour, label=label, width=0.6)
            bottom += v
        for xi, r in zip(x, group):
            ax.text(xi, r["step_time_s"] * scale, f"{r['step_time_s'] * scale:.3g}", ha="center",
                    va="bottom", fontsize=8)
        ax.set_xticks(x)
        ax.set_xticklabels([r["target"] for r in group], rotation=20, ha="right", fontsize=9)
        ax.set_ylabel(f"step time [{unit}]")
        ax.set_ylim(0, max(max(r["step_time_s"] for r in group) * scale * 1.15, 1e-12))
        if title:
            ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Step-time breakdown per target — {model}, {gpus} GPUs ({par})")
    err = d["summary_attrs"].get("engine_error")
    if err is not None and d["summary_attrs"].get("measured_step_s", 0) > 0:
        notes = [f"timeline engine vs measured host step: {100 * err:+.1f} %"] + notes
    bottom = footnote(fig, notes)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    save(fig, plt, out_dir, f"{stem}_breakdown.png", written)

    # Tokens/s per chip, log y: the host and the targets share one axis here.
    fig, ax = plt.subplots(figsize=(max(6.5, 1.1 * len(rows) + 2.5), 5.2))
    x = np.arange(len(rows))
    vals = np.array([r["tokens_per_s_per_chip"] for r in rows])
    colours = ["#8C8C8C" if r in host else "#4C72B0" for r in rows]
    ax.bar(x, np.where(vals > 0, vals, np.nan), color=colours, width=0.6)
    for xi, v in zip(x, vals):
        if v > 0:
            ax.text(xi, v * 1.08, fmt_num(v), ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    positive = vals[vals > 0]
    if positive.size:
        ax.set_ylim(positive.min() / 3, positive.max() * 4)
    ax.set_xticks(x)
    ax.set_xticklabels(specs, rotation=20, ha="right", fontsize=9)
    ax.set_ylabel("throughput [tokens/s per chip] (log)")
    ax.set_xlabel("target (grey: measured host)" if host else "target")
    ax.set_title(f"Training throughput per chip — {model}, {gpus} GPUs ({par})")
    ax.grid(axis="y", which="both", alpha=0.3)
    bottom = footnote(fig, notes[-1:] if NVLINK_NOTE in notes else [])
    fig.tight_layout(rect=(0, bottom, 1, 1))
    save(fig, plt, out_dir, f"{stem}_tokens_per_chip.png", written)
    return written


# ---------------------------------------------------------------------------------------------
# Sweep files: rows over model x target x gpus x plan, with a status per row.


def parse_spec(spec):
    """'h200@nvlink=400,nic=200' → ('h200', {'nvlink': '400', 'nic': '200'})."""
    chip, _, rest = spec.partition("@")
    caps = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        caps[k.strip()] = v.strip()
    return chip, caps


def cap_axis(specs):
    """When every spec caps one chip and exactly one key varies: (key, {spec: value}, is_percent)."""
    if not specs or not all("@" in s for s in specs):
        return None
    parsed = {s: parse_spec(s) for s in specs}
    chips = {c for c, _ in parsed.values()}
    keysets = {tuple(sorted(caps)) for _, caps in parsed.values()}
    if len(chips) != 1 or len(keysets) != 1:
        return None
    keys = keysets.pop()
    varying = [k for k in keys if len({caps[k] for _, caps in parsed.values()}) > 1]
    key = varying[0] if len(varying) == 1 else (keys[0] if len(keys) == 1 else None)
    if key is None:
        return None
    raw = {s: caps[key] for s, (_, caps) in parsed.items()}
    percent = {v.endswith("%") for v in raw.values()}
    if len(percent) != 1:
        return None
    try:
        values = {s: float(v.rstrip("%")) for s, v in raw.items()}
    except ValueError:
        return None
    return key, values, percent.pop(), chips.pop()


def log2_axis(ax, gpus):
    ax.set_xscale("log", base=2)
    ax.set_xticks(gpus)
    ax.set_xticklabels([str(g) for g in gpus], fontsize=8, rotation=45 if len(gpus) > 10 else 0)
    ax.minorticks_off()


def plot_sweep(d, stem, out_dir, np, plt):
    an = d["analysis"]
    if not an["scaling"]:
        raise InputError("/analysis/scaling is empty (a sweep without points?)")
    written = []
    models = list(dict.fromkeys(r["model"] for r in an["scaling"]))
    many = len(models) > 1
    for model in models:
        tag = f"_{safe_name(model)}" if many else ""
        grid = [r for r in an["scaling"] if r["model"] == model]
        ok = [r for r in grid if r["ok"]]
        if not ok:
            print(f"{PROG}: note: {model}: no point with a valid plan; no plots", file=sys.stderr)
            continue
        n_bad = len(grid) - len(ok)
        skipped = [f"{n_bad} grid point(s) without a valid plan (does not fit / invalid) are left out"] if n_bad else []
        targets = list(dict.fromkeys(r["target"] for r in ok))
        gpus_all = sorted({r["gpus"] for r in ok})
        plot_scaling(model, ok, targets, gpus_all, skipped, f"{stem}{tag}_scaling.png", out_dir, plt, written)
        cap = cap_axis(targets)
        if cap:
            cliffs = [c for c in an["cliffs"] if c["model"] == model]
            plot_cap(model, ok, targets, gpus_all, cap, cliffs, skipped, stem + tag, out_dir, plt, written)
        equiv = [e for e in an["equivalence"] if e["model"] == model]
        if equiv:
            plot_equivalence(model, equiv, f"{stem}{tag}_equivalence.png", out_dir, np, plt, written)
    if not written:
        raise InputError("no grid point with a valid plan; nothing to plot")
    return written


def plot_scaling(model, ok, targets, gpus_all, skipped, name, out_dir, plt, written):
    """Per-chip throughput of the best plan per point, one line per target."""
    fig, ax = plt.subplots(figsize=(8, 5.4))
    for t in targets:
        pts = [r for r in ok if r["target"] == t]
        ax.plot([r["gpus"] for r in pts], [r["tokens_per_s_per_chip"] for r in pts], marker="o", label=t)
    log2_axis(ax, gpus_all)
    ax.set_xlabel("chips [count, log2]")
    ax.set_ylabel("throughput [tokens/s per chip]")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Per-chip throughput vs cluster size — {model}")
    ax.grid(alpha=0.3)
    ax.legend(title="target", fontsize=8, ncol=2 if len(targets) > 8 else 1)
    notes = skipped + ([NVLINK_NOTE] if mentions_nvlink(targets) else [])
    bottom = footnote(fig, notes)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    save(fig, plt, out_dir, name, written)


def plot_cap(model, ok, targets, gpus_all, cap, cliffs, skipped, stem, out_dir, plt, written):
    """Per-chip throughput against the cap value, one line per chip count; cliffs as notes."""
    key, values, percent, chip = cap
    fig, ax = plt.subplots(figsize=(8, 5.4))
    for g in gpus_all:
        pts = sorted((values[r["target"]], r["tokens_per_s_per_chip"]) for r in ok if r["gpus"] == g)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{g} chips")
    label = CAP_LABELS.get(key, f"{key} cap")
    if percent:
        label = re.sub(r"\[.*\]", "[% of the chip's own figure]", label)
    ax.set_xlabel(label)
    ax.set_ylabel("throughput [tokens/s per chip]")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Per-chip throughput vs {label.split(' [')[0]} on {chip} — {model}")
    ax.grid(alpha=0.3)
    ax.legend(title="cluster size", fontsize=8)
    notes = [f"cliff at {c['gpus']} chips: {c['target']} is the first below 90 % of {c['baseline_target']} "
             f"({100 * c['fraction']:.0f} %)" for c in cliffs]
    notes = skipped + notes + ([NVLINK_NOTE] if key.startswith("nvlink") else [])
    bottom = footnote(fig, notes)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    save(fig, plt, out_dir, f"{stem}_cap_{key}.png", written)


def plot_equivalence(model, equiv, name, out_dir, np, plt, written):
    """Chips of each target that match the reference cluster's tokens/s, as /analysis/equivalence says."""
    ref_target, ref_gpus, ref_tps = equiv[0]["reference_target"], equiv[0]["reference_gpus"], equiv[0]["reference_tokens_per_s"]
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(equiv) + 3), 5.4))
    x = np.arange(len(equiv))
    vals = np.array([max(e["chips"], 1) for e in equiv])
    colours = ["#C44E52" if e["target"] == ref_target else ("#CCCCCC" if e["how"] == "more than" else "#4C72B0")
               for e in equiv]
    ax.bar(x, vals, color=colours, width=0.6,
           edgecolor=["#555555" if e["how"] == "more than" else c for e, c in zip(equiv, colours)])
    for xi, e in zip(x, equiv):
        prefix = {"more than": "> ", "at most": "≤ ", "interp": "≈ "}.get(e["how"], "")
        ax.text(xi, max(e["chips"], 1) * 1.05, f"{prefix}{e['chips']:,.0f}\n(×{e['ratio']:.2f})", ha="center",
                va="bottom", fontsize=8)
    if vals.max() / max(vals.min(), 1) > 20:
        ax.set_yscale("log", base=2)
        ax.set_ylabel("chips needed [count, log2]")
    else:
        ax.set_ylabel("chips needed [count]")
        ax.set_ylim(0, vals.max() * 1.25)
    ax.axhline(ref_gpus, color="#C44E52", linestyle="--", linewidth=1)
    ax.set_xticks(x)
    ax.set_xticklabels([e["target"] for e in equiv], rotation=20, ha="right", fontsize=9)
    ax.set_xlabel("target")
    ax.set_title(f"Chips needed to match {ref_gpus} × {ref_target} ({fmt_num(ref_tps)} tokens/s) — {model}")
    notes = ["log-log interpolation (a power law) between the grid points around the crossing; "
             "≤ / > : reached at the smallest / not reached at the largest grid point with a valid plan"]
    notes += [NVLINK_NOTE] if mentions_nvlink([e["target"] for e in equiv]) else []
    bottom = footnote(fig, notes)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    save(fig, plt, out_dir, name, written)


def main(argv):
    ap = argparse.ArgumentParser(prog=PROG, description="PNG plots from a capscale HDF5 file (run or sweep).")
    ap.add_argument("file", help="capscale .h5 file (a run, or a finished sweep with /analysis)")
    ap.add_argument("--out", default=None, help="directory for the PNGs (default: the file's directory)")
    a = ap.parse_args(argv)
    np, h5py, plt = import_libs()

    try:
        d = read_file(a.file, h5py)
    except InputError as e:
        die(f"{a.file}: {e}")
    except Exception as e:  # noqa: BLE001 - h5py raises many kinds on damaged files; all are bad input
        die(f"{a.file}: cannot read (truncated or corrupt?): {type(e).__name__}: {one_line(e)}")

    out_dir = a.out if a.out is not None else (os.path.dirname(os.path.abspath(a.file)))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        die(f"--out {out_dir}: {e.strerror}")
    if not os.access(out_dir, os.W_OK):
        die(f"--out {out_dir}: directory is not writable")
    base = os.path.basename(a.file)
    for suffix in (".partial", ".h5", ".hdf5"):
        base = base[: -len(suffix)] if base.endswith(suffix) else base
    stem = safe_name(base)

    try:
        if d["kind"] == "run":
            written = plot_run(d, stem, out_dir, np, plt)
        else:
            written = plot_sweep(d, stem, out_dir, np, plt)
    except InputError as e:
        die(f"{a.file}: {e}")
    except OSError as e:
        die(f"{a.file}: writing plots to {out_dir}: {one_line(e)}")
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
