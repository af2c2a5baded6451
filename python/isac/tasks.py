"""Units of work, and the runner that computes them in this process.

A :class:`Task` is a module-level function and its arguments. An argument may be another Task
(computed first, once however many tasks take it, its result passed in its place) or a
:class:`Shared` value (a large object such as loaded weights, which a runner ships once to each
process that needs it instead of once per task). A :class:`Unit` is a task whose result a run
keeps: its key in the resume store (experiments/resume.py; None: not stored), a label that
names it in messages (the experiment, method, eta, SNR, ...), the scenario it simulates (for
the memory check of the process that runs it) and its frame count (for progress).

A runner computes a list of units and returns their results in the list's order, whatever
order they finished in. :class:`SerialRunner` computes them here, one after another
(``isac-eval --workers 1``: no Dask is imported); ``cluster.DaskRunner`` sends them to Dask
workers. Both reuse the units found in the store, store each finished unit at once, go on with
the others when a unit raises, and then raise :class:`UnitsFailed` naming every failed unit
(label, key, error), so a rerun computes the failed ones only.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True, eq=False)
class Task:
    """``fn(*args, **kwargs)``, where an argument that is a Task is replaced by its result and a
    Shared by its value. ``fn`` must be importable by name (a module-level function) for a Dask
    worker to run it."""

    fn: Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def task(fn: Callable, *args, **kwargs) -> Task:
    """The Task ``fn(*args, **kwargs)``."""
    return Task(fn, args, kwargs)


@dataclass(frozen=True, eq=False)
class Shared:
    """A large argument (e.g. a loaded weights.Weights) that several tasks take: a runner
    ships it once to each process, not once per task."""

    value: Any


@dataclass(eq=False)
class Unit:
    """A task whose result a run keeps. ``key``: what the result depends on besides the run's
    common part (resume.ResultStore; None: never stored); ``label``: the unit in messages;
    ``scenario``: the scenario it simulates (a worker checks that it fits in its memory;
    None: no check); ``frames``: frames it simulates (progress)."""

    task: Task
    key: dict | None = None
    label: str = "unit"
    scenario: Any = None
    frames: int = 0


@dataclass(frozen=True)
class UnitFailure:
    """A unit that raised: its label, its resume key and the error (type: message)."""

    label: str
    key: dict | None
    error: str

    @classmethod
    def of(cls, unit: Unit, exc: BaseException) -> "UnitFailure":
        text = str(exc).strip() or repr(exc)
        return cls(unit.label, unit.key, f"{type(exc).__name__}: {text}")

    def __str__(self) -> str:
        key = "" if self.key is None else f" (key {json.dumps(self.key, sort_keys=True, default=str)})"
        return f"unit {self.label} failed: {self.error}{key}"


class UnitsFailed(RuntimeError):
    """Some units raised; the others were computed (and stored). ``failures``: UnitFailure each."""

    def __init__(self, failures: list[UnitFailure], total: int):
        self.failures = failures
        self.total = total
        super().__init__(f"{len(failures)} of {total} units failed: " + "; ".join(str(f) for f in failures))


def report(failure: UnitFailure) -> None:
    """Say on stderr, at once, that a unit failed (the run goes on with the others)."""
    print(f"error: {failure}", file=sys.stderr, flush=True)


def units_bar(total: int, desc: str, progress=None, frames: int = 0):
    """The runner's progress bar over ``total`` units (tqdm; ``progress`` as
    evaluation.progress_bar: False off, None on for terminals); the frames of the finished
    units, out of ``frames``, are shown beside it (:func:`advance`)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="unit", disable=progress is False if progress is not None else None)
    bar.frames_total, bar.frames_done = frames, 0
    return bar


def advance(bar, unit: Unit) -> None:
    """One more unit finished in ``bar`` (:func:`units_bar`), with its frames."""
    bar.frames_done += unit.frames
    if bar.frames_total:
        bar.set_postfix_str(f"{bar.frames_done}/{bar.frames_total} frames", refresh=False)
    bar.update(1)


def compute(t: Task, memo: dict) -> Any:
    """The result of task ``t`` here: its Task arguments first (each once per ``memo``: a
    dependency that raised raises again for every task that takes it, without a second run)."""
    done = memo.get(id(t))
    if done is not None:
        ok, value = done
        if ok:
            return value
        raise value
    try:
        args = [_value(a, memo) for a in t.args]
        kwargs = {k: _value(v, memo) for k, v in t.kwargs.items()}
        value = t.fn(*args, **kwargs)
    except Exception as exc:
        memo[id(t)] = (False, exc)
        raise
    memo[id(t)] = (True, value)
    return value


def _value(arg, memo: dict):
    if isinstance(arg, Task):
        return compute(arg, memo)
    if isinstance(arg, Shared):
        return arg.value
    return arg


class SerialRunner:
    """Computes units in this process, one after another, in the order given: the path of
    ``isac-eval --workers 1`` (the way gr-isac always ran). ``progress``: the unit bar's flag
    (evaluation.progress_bar's); ``task_progress``: the flag the tasks' own frame bars get."""

    workers = 1
    description = "in this process"

    def __init__(self, progress=None):
        self.progress = progress
        self.task_progress = progress
        self.seconds: list[float] = []  # per unit of the last run: seconds spent on it (~0 when stored)
        self._limits = None  # one_blas_thread() inside ``with``

    def run(self, units: list[Unit], store=None, desc: str = "units") -> list:
        """The results of ``units``, in order: from ``store`` (resume.ResultStore) when it holds
        them, else computed here (and stored). Raises UnitsFailed after the last unit when any
        raised (KeyboardInterrupt stops at once: the finished units are stored)."""
        memo: dict = {}
        results, failures = [], []
        self.seconds = []
        with units_bar(len(units), desc, self.progress, sum(u.frames for u in units)) as bar:
            for u in units:
                t0 = time.perf_counter()
                try:
                    if store is None or u.key is None:
                        result = compute(u.task, memo)
                    else:
                        result = store.unit(u.key, lambda u=u: compute(u.task, memo))
                except Exception as exc:
                    failures.append(UnitFailure.of(u, exc))
                    report(failures[-1])
                    result = None
                results.append(result)
                self.seconds.append(time.perf_counter() - t0)
                advance(bar, u)
        if failures:
            raise UnitsFailed(failures, len(units))
        return results

    def summary(self) -> dict:
        """Where the units ran, for an experiment's JSON summary."""
        return {"where": self.description, "workers": 1}

    def close(self) -> None:
        """Ends the one-BLAS-thread limit of ``with`` (the Dask runner's counterpart closes its cluster)."""
        limits, self._limits = self._limits, None
        if limits is not None:
            limits.__exit__(None, None, None)

    def __enter__(self) -> "SerialRunner":
        """Inside ``with``, this process computes with one BLAS thread, as each Dask worker does
        (cluster.WORKER_ENV): :func:`one_blas_thread`."""
        self._limits = one_blas_thread()
        self._limits.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def one_blas_thread():
    """The BLAS libraries loaded in this process (numpy's OpenBLAS; threadpoolctl, since OpenBLAS
    reads OPENBLAS_NUM_THREADS only when numpy is imported) limited to one thread inside the
    ``with``, restored after it. ``isac-eval`` computes so in its own process (``--workers 1``,
    and what a Dask client computes itself, e.g. fig3): one unit then runs on one core, as on a
    Dask worker, and a BLAS product gives the same bits as there (OpenBLAS splits a product
    differently over 2 threads than over 1, which moves its last bits). torch keeps its threads
    (a training in the client)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


__all__ = [
    "SerialRunner",
    "one_blas_thread",
    "Shared",
    "Task",
    "Unit",
    "UnitFailure",
    "UnitsFailed",
    "advance",
    "compute",
    "report",
    "task",
    "units_bar",
]
