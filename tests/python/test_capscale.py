"""The Python module against the CLI (issue 14): same rows, same validation and messages, DataFrames
with str columns, and the hostile corpus fed through the bindings without crashing the interpreter.
Run by CTest: /usr/bin/python3 tests/python/test_capscale.py CAPSCALE_BIN (PYTHONPATH = build/python).
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

import capscale

BIN = sys.argv.pop(1) if len(sys.argv) > 1 else "capscale"
DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


def cli(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=600)


def cli_error(*args):
    """The CLI's message for bad input: its stderr line without the 'capscale: error: ' prefix."""
    r = cli(*args)
    assert r.returncode == 2, (args, r.returncode, r.stderr)
    line = r.stderr.strip()
    assert line.startswith("capscale: error: "), line
    return line[len("capscale: error: "):]


class Predict(unittest.TestCase):
    def test_row_is_the_cli_json_row(self):
        kw = dict(model="llama3.1-70b", chip="h100@nic=200", gpus=64, tp=8, pp=2, global_batch_size=128)
        row = capscale.predict(**kw)
        r = cli("predict", "--model", "llama3.1-70b", "--chip", "h100@nic=200", "--gpus", "64", "--tp", "8", "--pp", "2",
                "--global-batch-size", "128", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(row, json.loads(r.stdout))
        for key in ("model", "target", "gpus", "parallel", "step_time_s", "tokens_per_s", "tokens_per_s_per_chip",
                    "tflops_per_chip", "mfu", "hfu", "memory_gb_per_chip", "fits", "breakdown_s", "source"):
            self.assertIn(key, row)

    def test_defaults_search_and_flags_fix(self):
        row = capscale.predict(model="llama3.1-70b", chip="h20", gpus=1024)
        self.assertTrue(row["fits"])
        self.assertGreater(row["parallel"]["tp"] * row["parallel"]["pp"], 1)
        fixed = capscale.predict(model="llama3.1-70b", chip="h20", gpus=1024, tp=4, recompute="full")
        self.assertEqual((fixed["parallel"]["tp"], fixed["parallel"]["recompute"]), (4, "full"))
        plain = capscale.predict(model="llama3.1-70b", chip="h20", gpus=1024, tp=4, no_search=True)
        self.assertEqual((plain["parallel"]["pp"], plain["parallel"]["recompute"]), (1, "none"))
        # Bool fields by their field name, negating flags included (flash_attention=False → --no-flash-attention).
        a = capscale.predict(model="llama3.1-8b", chip="h100", gpus=8, tp=8, flash_attention=False, no_search=True)
        self.assertFalse(a["parallel"]["flash_attention"])
        b = capscale.predict(model="llama3.1-8b", chip="h100", gpus=8, tp=8, flash_attention=True, no_search=True)
        self.assertTrue(b["parallel"]["flash_attention"])
        self.assertGreater(a["memory_gb_per_chip"], b["memory_gb_per_chip"])

    def test_search_is_ranked(self):
        rows = capscale.search(model="llama3.1-70b", chip="h20", gpus=64, global_batch_size=128, seq_length=4096, top=3)
        self.assertEqual(len(rows), 3)
        per_chip = [r["tokens_per_s_per_chip"] for r in rows]
        self.assertEqual(per_chip, sorted(per_chip, reverse=True))
        self.assertEqual(capscale.search(model="llama3.1-70b", chip="h20", gpus=1000, global_batch_size=1024), [])

    def test_keywords_come_from_the_flags(self):
        names = [k[0] for k in capscale.keywords()]
        for n in ("model", "chip", "gpus", "tp", "pp", "cp", "vpp", "micro_batch_size", "global_batch_size", "seq_length",
                  "recompute", "zero", "flash_attention", "precision", "num_layers", "calibration", "top", "no_search"):
            self.assertIn(n, names)
        self.assertNotIn("no_flash_attention", names)
        import inspect
        self.assertIn("micro_batch_size", inspect.signature(capscale.predict).parameters)


class BadInput(unittest.TestCase):
    CASES = [  # (keywords, the same as CLI flags)
        (dict(model="no-such-model", chip="h100", gpus=8), ["--model", "no-such-model", "--chip", "h100", "--gpus", "8"]),
        (dict(model="llama3.1-70b", chip="h100@watts=300", gpus=8), ["--model", "llama3.1-70b", "--chip", "h100@watts=300", "--gpus", "8"]),
        (dict(model="llama3.1-70b", chip="h100", gpus=24, tp=3), ["--model", "llama3.1-70b", "--chip", "h100", "--gpus", "24", "--tp", "3"]),
        (dict(model="llama3.1-70b", chip="h100", gpus=12, tp=8), ["--model", "llama3.1-70b", "--chip", "h100", "--gpus", "12", "--tp", "8"]),
        (dict(model="llama3.1-70b", chip="h100", gpus=8, recompute="sometimes"), ["--model", "llama3.1-70b", "--chip", "h100", "--gpus", "8", "--recompute", "sometimes"]),
        (dict(model="llama3.1-70b", chip="h100", gpus=0), ["--model", "llama3.1-70b", "--chip", "h100", "--gpus", "0"]),
        (dict(model="llama3.1-70b", chip="h100", gpus=2**41), ["--model", "llama3.1-70b", "--chip", "h100", "--gpus", str(2**41)]),
        (dict(model="llama3.1-70b", chip="h100", gpus=8, tp=0), ["--model", "llama3.1-70b", "--chip", "h100", "--gpus", "8", "--tp", "0"]),
        (dict(model="llama3.1-8b", chip="h100", gpus=1, num_layers=33), ["--model", "llama3.1-8b", "--chip", "h100", "--gpus", "1", "--num-layers", "33"]),
        (dict(model="llama3.1-70b", chip="h20", gpus=1000, global_batch_size=1024), ["--model", "llama3.1-70b", "--chip", "h20", "--gpus", "1000", "--global-batch-size", "1024"]),
        (dict(chip="h100", gpus=8), ["--chip", "h100", "--gpus", "8"]),
    ]

    def test_same_message_as_the_cli(self):
        for kw, flags in self.CASES:
            with self.subTest(kw=kw):
                want = cli_error("predict", *flags)
                with self.assertRaises(capscale.InputError) as e:
                    capscale.predict(**kw)
                self.assertIsInstance(e.exception, ValueError)
                self.assertEqual(str(e.exception), want)

    def test_python_only_misuse_is_a_value_error(self):
        for kw in (dict(model="llama3.1-8b", chip="h100", gpus=8, tpp=2),
                   dict(model="llama3.1-8b", chip="h100", gpus=8, tp=True),
                   dict(model="llama3.1-8b", chip="h100", gpus=8, tp=[1, 2]),
                   dict(model="llama3.1-8b", chip="h100", gpus=8, sequence_parallel="yes"),
                   dict(model="llama3.1-8b", chip="h100", gpus=8, search=True),
                   dict(model="llama3.1-8b", chip="h100", gpus=8, top=3),
                   dict(model="llama3.1-8b", chip="h100", gpus="8 --tp 3"),
                   dict(model="llama3.1-8b\x00", chip="h100", gpus=8),
                   dict(model="llama3.1-8b", chip="h100", gpus=8.5),
                   dict(model="llama3.1-8b", chip="h100", gpus=2**100),
                   dict(model="llama3.1-8b", chip="h100", gpus=8, tp=-1),
                   dict(model=b"llama3.1-8b", chip="h100", gpus=8),
                   dict(model="llama3.1-8b", chip="h100@nvlink=\udcff", gpus=8),
                   dict(model="x" * 100000, chip="h100", gpus=8)):
            with self.subTest(kw=kw):
                with self.assertRaises(ValueError) as e:
                    capscale.predict(**kw)
                self.assertNotIn("\n", str(e.exception))
        with self.assertRaises(ValueError):
            capscale.read("/etc/hostname")
        with self.assertRaises(ValueError):
            capscale.sweep("/nonexistent/sweep.yaml")


class Corpus(unittest.TestCase):
    """tests/data/bad through the bindings: every file and cap spec raises InputError naming it; the
    good ones answer. (validation/ files are read by `capscale validate`, which has no binding.)"""

    def expect_refused(self, what, call):
        try:
            call()
        except capscale.InputError as e:
            self.assertIn(what, str(e))
            self.assertNotIn("\n", str(e))
        else:
            self.fail(f"{what}: accepted")

    def test_bad_files(self):
        n = 0
        for kind in ("models", "hf", "chips", "sweeps"):
            for f in sorted((DATA / "bad" / kind).iterdir()):
                n += 1
                p = str(f)
                with self.subTest(file=p):
                    if kind in ("models", "hf"):
                        self.expect_refused(p, lambda: capscale.predict(model=p, chip="h100", gpus=8))
                    elif kind == "chips":
                        self.expect_refused(p, lambda: capscale.predict(model="tiny-demo", chip=p, gpus=8))
                    else:
                        self.expect_refused(p, lambda: capscale.sweep(p))
        self.assertGreaterEqual(n, 100)

    def test_bad_caps(self):
        specs = [l for l in (DATA / "bad" / "caps.txt").read_text().splitlines() if l and not l.startswith("#")]
        self.assertGreater(len(specs), 20)
        for spec in specs:
            with self.subTest(spec=spec):
                self.expect_refused("--chip", lambda: capscale.predict(model="llama3.1-8b", chip=spec, gpus=8))

    def test_good_files(self):
        for f in sorted((DATA / "good" / "hf").iterdir()):
            self.assertIn("fits", capscale.predict(model=str(f), chip="h100", gpus=8))
        self.assertIn("fits", capscale.predict(model=str(DATA / "good" / "models" / "good-model.yaml"), chip="h100", gpus=8))
        self.assertIn("fits", capscale.predict(model="tiny-demo", chip=str(DATA / "good" / "chips" / "good-chip.yaml"), gpus=8))
        self.assertGreater(len(capscale.sweep(DATA / "good" / "sweeps" / "good-sweep.yaml")), 0)


class Frames(unittest.TestCase):
    def test_sweep_equals_the_cli_file(self):
        path = DATA / "sweeps" / "small.yaml"
        df = capscale.sweep(path)
        self.assertEqual(len(df), 36)
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "small.h5")
            r = cli("sweep", str(path), "--out", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            f = capscale.read(out)
        self.assertEqual(f.attrs["kind"], "sweep")
        self.assertEqual(list(df.columns), list(f.columns))
        f = f.sort_values("point").reset_index(drop=True)
        for col in df.columns:
            with self.subTest(column=col):
                self.assertEqual(df[col].tolist(), f[col].tolist())
        for col in ("model", "target", "key", "status", "recompute"):
            self.assertTrue(all(type(v) is str for v in f[col]), col)
        self.assertTrue(df["fits"].dtype == bool)


    def test_read_a_run_file(self):
        run = capscale.read(DATA.parents[1] / "results" / "quickstart.h5")
        self.assertEqual(run.attrs["kind"], "run")
        self.assertTrue(run["target"][0].startswith("host:"))  # the host's measured row first
        self.assertEqual(run["source"][0], "measured")
        self.assertTrue(all(type(v) is str for v in run["target"]))


class Readme(unittest.TestCase):
    def test_worked_example_runs_as_printed(self):
        """The README's Python block, run as printed in a scratch folder: it prints what the README
        shows under it and writes its plot."""
        import re
        readme = (DATA.parents[1] / "README.md").read_text()
        part = readme[readme.index("## capscale from Python"):]
        code, shown = re.search(r"```python\n(.*?)```\s*```\n(.*?)```", part, re.S).groups()
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([sys.executable, "-c", code], cwd=d, capture_output=True, text=True, timeout=600,
                               env={**os.environ, "MPLBACKEND": "Agg"})
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(os.path.getsize(os.path.join(d, "h20_vs_h200.png")) > 0)
        # The same lines and words; numbers within 25 % (a cost-model change moves them, and the
        # README's output is then regenerated with this block, not this test loosened further).
        got, want = r.stdout.strip().splitlines(), shown.strip().splitlines()
        self.assertEqual(len(got), len(want), r.stdout)
        for g, w in zip(got, want):
            gw, ww = g.split(), w.split()
            self.assertEqual(len(gw), len(ww), (g, w))
            for a, b in zip(gw, ww):
                try:
                    x, y = float(a), float(b)
                except ValueError:
                    self.assertEqual(a, b, (g, w))
                    continue
                self.assertLessEqual(abs(x - y), 0.25 * max(abs(y), 1e-9), (g, w))


if __name__ == "__main__":
    unittest.main(verbosity=2)
