"""Per-call cost of capscale.predict in-process against a `capscale predict` process (issue 14:
the binding may add at most 1 ms to the evaluation).
    PYTHONPATH=build/release/python /usr/bin/python3 bench/python_overhead.py build/release/src/capscale
Prints, for one plan given whole (no search) and for the default search, the mean wall time of a
Python call, the evaluation inside it (run_predict's own clock), their difference (the binding's
overhead) and the wall time of the same command as a process.
"""
import statistics
import subprocess
import sys
import time

import capscale
from capscale import _capscale

BIN = sys.argv[1] if len(sys.argv) > 1 else "capscale"
CASES = {
    "70B, 1024 x h200, plan given": dict(model="llama3.1-70b", chip="h200", gpus=1024, tp=8, pp=4, global_batch_size=1024,
                                         recompute="selective", no_search=True),
    "70B, 1024 x h20, default search": dict(model="llama3.1-70b", chip="h20", gpus=1024),
}


def flags(kw):
    out = []
    for k, v in kw.items():
        if v is True:
            out.append("--" + k.replace("_", "-"))
        else:
            out += ["--" + k.replace("_", "-"), str(v)]
    return out


for name, kw in CASES.items():
    capscale.predict(**kw)  # warm: model and chip files read, plan workspace allocated
    calls, inside = [], []
    n = 200 if kw.get("no_search") else 20
    for _ in range(n):
        t0 = time.perf_counter()
        _row, ms = _capscale.predict_timed(**kw)
        calls.append((time.perf_counter() - t0) * 1e3)
        inside.append(ms)
    procs = []
    for _ in range(10):
        t0 = time.perf_counter()
        subprocess.run([BIN, "predict", *flags(kw), "--json"], check=True, capture_output=True)
        procs.append((time.perf_counter() - t0) * 1e3)
    call, ev, proc = statistics.mean(calls), statistics.mean(inside), statistics.mean(procs)
    print(f"{name}: python call {call:.3f} ms = evaluation {ev:.3f} ms + binding {call - ev:.3f} ms; "
          f"capscale process {proc:.1f} ms ({n} calls, 10 processes)")
