"""capscale from Python: LLM training throughput per chip, predicted in this process.

    import capscale
    row = capscale.predict(model="llama3.1-70b", chip="h20", gpus=1024)       # dict: the --json row
    best = capscale.search(model="llama3.1-70b", chip="h20", gpus=1024, top=3)  # list[dict], best first
    df = capscale.sweep("configs/sweeps/h20-vs-h200.yaml")                    # pandas.DataFrame
    df = capscale.read("results/quickstart.h5")                               # run or sweep file

Keywords are the CLI's flags with '-' as '_' (model, chip, gpus, num_layers, calibration, top) and,
for the plan, the ParallelConfig field names (tp, pp, cp, vpp, micro_batch_size, global_batch_size,
seq_length, recompute, zero, sequence_parallel, tp_comm_overlap, flash_attention,
grad_reduce_in_bf16, overlap_grad_reduce, overlap_param_gather, overlap_p2p_comm,
p2p_scatter_gather, async_tp_comm, grad_all_reduce, dp_max_ctas, cp_max_ctas, pp_max_ctas, precision);
capscale.keywords() lists them. As with
`capscale predict`, the plan keywords not given are searched (no_search=True takes defaults).
Bad input raises capscale.InputError, a ValueError carrying the CLI's one-line message.
"""
import inspect as _inspect

from ._capscale import InputError
from . import _capscale

__all__ = ["InputError", "predict", "search", "sweep", "read", "keywords"]


def keywords():
    """[(keyword, flag, kind, help)] of predict() and search(), generated from the CLI's flags."""
    return _capscale.keywords()


def predict(**kwargs):
    """One prediction, as `capscale predict ... --json`: a dict with model, target, gpus,
    parallel{...}, step_time_s, tokens_per_s_per_chip, mfu, memory_gb_per_chip, fits, ..."""
    return _capscale.predict(**kwargs)


def search(**kwargs):
    """The plans that fit, best first, as `capscale predict --search --json` (top=5 rows);
    [] when none fits."""
    return _capscale.search(**kwargs)


def _frame(columns, attrs=None):
    import pandas as pd

    df = pd.DataFrame(columns)
    if attrs:
        df.attrs.update(attrs)
    return df


def sweep(path):
    """Every point of a sweep YAML (configs/sweeps/*.yaml), computed in this process: a DataFrame
    with the /summary columns `capscale sweep` writes (point, key, status, model, target, gpus,
    tp, pp, ..., tokens_per_s_per_chip, mfu, fits, ...)."""
    return _frame(_capscale.sweep_columns(str(path)))


def read(path):
    """The /summary table of a capscale HDF5 file (run or sweep) as a DataFrame, strings as str;
    the file's attributes (kind, schema_version, command_line, created_utc, git_sha) in df.attrs."""
    columns, attrs = _capscale.read_columns(str(path))
    return _frame(columns, attrs)


def _signature(include_top):
    params = []
    for name, _flag, kind, _help in _capscale.keywords():
        if name == "top" and not include_top:
            continue
        params.append(_inspect.Parameter(name, _inspect.Parameter.KEYWORD_ONLY, default=None))
    return _inspect.Signature(params)


# help(capscale.predict) lists every keyword, generated from the same flags the CLI has.
predict.__signature__ = _signature(False)
search.__signature__ = _signature(True)
