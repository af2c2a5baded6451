"""Units of work on Dask distributed (``isac-eval --workers N`` / ``--scheduler ADDRESS``).

:class:`DaskRunner` computes the units of tasks.py on Dask workers: a local cluster of ``N``
worker processes of one thread each (the default: every CPU of this machine), listening on
the loopback only, or the workers of a running Dask scheduler (``tcp://host:8786``, or
``tls://host:8786`` with Dask's TLS configuration). The cluster starts at the first unit there
is to compute (a run whose units are all in the resume store starts none).

Each unit is one Dask task; a Task argument of several units (a threshold calibrated once per
method) is one task that they depend on; a Shared argument (loaded weights) is sent once, as a
task of its own that returns it (made again should the worker holding it die).
The client takes each result as it arrives, writes it at once, atomically, to the resume store
(experiments/resume.py) and advances a progress bar over the units and their frames; the
results come back in the order of the units, whatever order they finished in, so a run gives
the same files as ``--workers 1``, bit for bit. A unit that raises is reported with its label
and key and the others go on (tasks.UnitsFailed at the end); a worker that dies is replaced
and its tasks rescheduled by Dask (a task that keeps killing its workers fails as KilledWorker
the fourth time: Dask's distributed.scheduler.allowed-failures).

On the worker (:func:`run_on_worker`), before each task: the worker must run the client's
code (resume.code_digest: the same Python sources and compiled kernels; a stored unit must
not come from other code), it imports the plug-ins the client imported (``--plugin``: their
methods, receivers and array models are then known there too, plugins.load), and the unit's
scenario must fit in the worker's memory
(resources.check_memory with the worker's memory limit). BLAS / OpenMP threads are pinned to
one per worker (WORKER_ENV, set by the nanny before the worker starts); the C++ kernels run
one thread per call in the evaluation.

Security: Dask sends pickled functions and data. Whoever can connect to a scheduler can run
any code on its workers, and a scheduler can run code in the client: a scheduler port is a
code-execution port. The local cluster listens on 127.0.0.1 only; across machines, use a
private network or TLS with client certificates (docs/distributed.md). Results are never read
from pickles on disk: the resume store is JSON.
"""

from __future__ import annotations

import os
import re
import sys
import time
import uuid
import warnings

from .tasks import Shared, Task, Unit, UnitFailure, UnitsFailed, advance, one_blas_thread, report, units_bar

#: environment of local worker processes, set before each is spawned: one BLAS / OpenMP / torch
#: thread each (units run in parallel across processes; threads inside a process would only
#: compete for the same cores), and nothing else. Dask's own default also sets
#: MALLOC_TRIM_THRESHOLD_=65536, and glibc turns its dynamic mmap threshold off once a trim
#: threshold is set: every large numpy temporary of a batch is then a fresh mmap, paid again in
#: page faults. Measured here: evaluate on 1000 + 1000 frames took 8.3 s in process, 13.1-16.0 s
#: on a worker with Dask's default, and 9.3 s on a worker with this environment.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

#: Dask settings of the local cluster (its scheduler and nannies in this process, its workers
#: in theirs). Dask's defaults keep every event loop busy beside the units: a statistical
#: profiler in each worker (a stack sample of the running task every 10 ms, for the dashboard's
#: profile page, which nobody reads here), a blocked-loop watchdog tick every 20 ms and a system
#: monitor (psutil) every 0.5 s in every process. Measured on the 2-vCPU VM with two workers
#: busy: the event loops took 2.9-3.9 s of CPU per 40 s (7-10 % of the cores the units run on);
#: with these settings 0.4-0.7 s. The workers' memory monitor (the nanny's restart of a worker
#: over its memory limit) keeps its default.
LOCAL_CLUSTER_CONFIG = {
    "distributed.nanny.pre-spawn-environ": dict(WORKER_ENV),
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
}

#: seconds to wait for a scheduler given by --scheduler before giving up, naming it
CONNECT_TIMEOUT_S = 5

#: the address forms --scheduler takes
SCHEDULER_ADDRESS = re.compile(r"^(?:(tcp|tls)://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


class ClusterError(RuntimeError):
    """The Dask cluster cannot be used (not reachable, other code on a worker, ...); the
    message says why and names the address."""


def default_workers() -> int:
    """Every CPU this process may run on (the default of --workers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_workers(workers: int) -> int:
    """``workers`` when it is a worker count >= 1, else ValueError naming --workers."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be an integer >= 1, got {workers!r}")
    return workers


def check_scheduler_address(address: str) -> str:
    """The scheduler address with its protocol (``host:port`` is ``tcp://host:port``); a
    ValueError naming --scheduler and the allowed forms otherwise."""
    m = SCHEDULER_ADDRESS.match(address.strip())
    if not m or not 0 < int(m.group(3)) < 65536:
        raise ValueError(
            f"--scheduler must be tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT (port 1-65535), got {address!r}"
        )
    return f"{m.group(1) or 'tcp'}://{m.group(2)}:{int(m.group(3))}"


def worker_memory_bytes() -> int | None:
    """The memory a task on this Dask worker may use (bytes): the machine's available memory
    (resources.available_memory_bytes) capped by the worker's own memory limit."""
    from .resources import available_memory_bytes

    known = [available_memory_bytes()]
    try:
        from distributed import get_worker

        known.append(get_worker().memory_manager.memory_limit)
    except (ImportError, ValueError, AttributeError):  # not on a worker
        pass
    known = [k for k in known if k]
    return min(known) if known else None


def run_on_worker(code: tuple[str, tuple[str, ...]], scenario, fn, args, kwargs):
    """Run a task on a worker: ``fn(*args, **kwargs)`` after checking that this worker runs the
    client's code (``code``: (resume.code_digest, the client's plug-ins)), importing the client's
    plug-ins, and checking that ``scenario`` (None: no check) fits in its memory
    (resources.check_memory: ResourceError naming the key)."""
    from . import plugins
    from .experiments.resume import code_digest

    code, names = code
    for name in names:  # once per worker process (plugins.load imports each once)
        plugins.load(name)
    mine = code_digest()
    if mine != code:
        raise ClusterError(
            f"worker {_worker_name()} runs other gr-isac code (digest {mine[:12]}, the client's {code[:12]}): "
            "install the same build of gr-isac on every machine"
        )
    if scenario is not None:
        from .resources import check_memory

        check_memory(scenario, None, available=worker_memory_bytes())
    return fn(*args, **kwargs)


def run_unit_on_worker(code: tuple[str, tuple[str, ...]], scenario, fn, args, kwargs) -> tuple[float, object]:
    """(seconds, result) of :func:`run_on_worker`: a unit's task, timed where it runs."""
    t0 = time.perf_counter()
    result = run_on_worker(code, scenario, fn, args, kwargs)
    return time.perf_counter() - t0, result


def shared_value(value):
    """A tasks.Shared value as the result of a task of its own (DaskRunner._submit)."""
    return value


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "(not a Dask worker)"


class DaskRunner:
    """Runs units on Dask workers: a local cluster of ``workers`` processes (default: every
    CPU) or, with ``scheduler``, the workers of a running Dask scheduler. ``progress``: the
    unit bar's flag (evaluation.progress_bar's); the tasks themselves show no bars."""

    task_progress = False

    def __init__(self, workers: int | None = None, scheduler: str | None = None, progress=None):
        if workers is not None and scheduler is not None:
            raise ValueError("--workers and --scheduler exclude each other: a scheduler's cluster has its own workers")
        self.scheduler = None if scheduler is None else check_scheduler_address(scheduler)
        self._limits = None  # tasks.one_blas_thread() inside ``with``
        self.local_workers = None if scheduler is not None else check_workers(workers or default_workers())
        self.progress = progress
        self._cluster = None
        self._client = None

    @property
    def description(self) -> str:
        if self.scheduler is None:
            return f"a local Dask cluster of {self.local_workers} worker processes"
        return f"the Dask scheduler at {self.scheduler}"

    @property
    def workers(self) -> int:
        """Worker threads to plan for: the local cluster's workers, or the threads of the
        scheduler's workers when connected (at least 1)."""
        if self.scheduler is None:
            return self.local_workers
        return max(1, sum(self.client().nthreads().values()))

    @property
    def address(self) -> str:
        """The scheduler's address (the local cluster starts here when it has not yet)."""
        return self.client().scheduler.address

    def summary(self) -> dict:
        """Where the units ran, for an experiment's JSON summary (workers: None when no unit
        needed the cluster)."""
        workers = None
        if self._client is not None:
            workers = self.local_workers if self.scheduler is None else len(self._client.nthreads())
        return {"where": self.description, "workers": workers}

    def client(self):
        """The Dask client, starting the local cluster or connecting to the scheduler at the
        first call (ClusterError naming the address when the scheduler does not answer)."""
        if self._client is None:
            try:
                import distributed  # noqa: F401  (pinned in tools/requirements.txt)
            except ImportError as exc:
                raise ClusterError(
                    f"{self.description} needs Dask distributed ({exc}): run 'bash tools/setup.sh', "
                    "or compute in this process with --workers 1"
                ) from None
            self._client = self._start_local() if self.scheduler is None else self._connect()
            self._check_code()
        return self._client

    def _start_local(self):
        import dask
        from distributed import Client, LocalCluster

        # the nannies take the configuration of the processes they spawn (and respawn) when
        # they are made (pre-spawn-environ: Dask's default adds MALLOC_TRIM_THRESHOLD_, which
        # WORKER_ENV leaves out); the scheduler and the client read theirs as they start
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            self._cluster = LocalCluster(
                n_workers=self.local_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",  # scheduler, nannies and workers: the loopback only
                dashboard_address="127.0.0.1:0",
                worker_dashboard_address=None,
                env=WORKER_ENV,
            )
            return Client(self._cluster, set_as_default=False)

    def _connect(self):
        from distributed import Client

        try:
            return Client(self.scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, ValueError, TypeError) as exc:
            hint = ""
            if self.scheduler.startswith("tls://"):
                hint = (
                    "; tls:// needs Dask's TLS configuration (distributed.comm.tls.ca-file, "
                    ".client.cert, .client.key: docs/distributed.md, Security)"
                )
            raise ClusterError(
                f"--scheduler {self.scheduler}: no Dask scheduler answered within {CONNECT_TIMEOUT_S} s "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r}){hint}"
            ) from None

    def _check_code(self) -> None:
        """Every worker present runs the client's code (run_on_worker checks late joiners)."""
        from .experiments.resume import code_digest

        self._code = code_digest()
        try:
            theirs = self._client.run(code_digest)
        except Exception as exc:  # e.g. a worker that cannot import gr-isac
            self.close()
            raise ClusterError(
                f"{self.description}: a worker cannot run gr-isac ({type(exc).__name__}: {exc})"
            ) from None
        other = sorted(w for w, d in theirs.items() if d != self._code)
        if other:
            self.close()
            raise ClusterError(
                f"{self.description}: worker(s) {', '.join(other)} run other gr-isac code than this client "
                "(another version or build): install the same build of gr-isac on every machine"
            )
        if not theirs:
            print(f"note: {self.description} has no workers yet; waiting for them", file=sys.stderr)

    def run(self, units: list[Unit], store=None, desc: str = "units") -> list:
        """The results of ``units``, in order: from ``store`` (resume.ResultStore) when it holds
        them, else computed on the workers and stored as each arrives. Raises UnitsFailed when
        any unit raised (after the others finished); KeyboardInterrupt cancels what is left."""
        results = [None] * len(units)
        self.seconds = [0.0] * len(units)
        todo = []
        for i, u in enumerate(units):
            if store is not None and u.key is not None:
                found, result = store.lookup(u.key)
                if found:
                    results[i] = result
                    continue
            todo.append(i)
        if not todo:
            return results
        from distributed import as_completed

        client = self.client()
        submitted: dict[int, object] = {}  # id(Task or Shared) -> its future
        unit_of = {}  # a unit's future's key -> the unit's index
        failures = []
        try:
            for rank, i in enumerate(todo):
                f = self._submit(client, units[i].task, units[i], submitted, priority=len(todo) - rank)
                unit_of[f.key] = i
            unit_futures = [f for f in submitted.values() if f.key in unit_of]
            with units_bar(len(todo), desc, self.progress, sum(units[i].frames for i in todo)) as bar:
                for f in as_completed(unit_futures, loop=client.loop):
                    i = unit_of[f.key]
                    u = units[i]
                    if f.status == "finished":
                        self.seconds[i], results[i] = f.result()
                        if store is not None and u.key is not None:
                            store.save(u.key, results[i])
                    else:
                        failures.append(UnitFailure.of(u, f.exception()))
                        report(failures[-1])
                    f.release()
                    advance(bar, u)
        except BaseException:
            client.cancel(list(submitted.values()))
            raise
        if failures:
            raise UnitsFailed(failures, len(todo))
        return results

    def _submit(self, client, t: Task, unit: Unit | None, submitted: dict, priority: int):
        """The future of task ``t`` (one per Task and per Shared however many units take it)."""
        if id(t) in submitted:
            return submitted[id(t)]

        def value(arg):
            if isinstance(arg, Task):
                return self._submit(client, arg, None, submitted, priority=1 << 30)  # dependencies first
            if isinstance(arg, Shared):
                if arg.value is None:
                    return None
                if id(arg) not in submitted:
                    # a task that returns the value (not a scatter): the scheduler keeps the task,
                    # so a copy lost with a killed worker is made again; sent once, large on purpose
                    with warnings.catch_warnings():
                        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
                        submitted[id(arg)] = client.submit(
                            shared_value, arg.value, key=f"shared-{uuid.uuid4().hex}", pure=False, priority=1 << 30
                        )
                return submitted[id(arg)]
            return arg

        args = [value(a) for a in t.args]
        kwargs = {k: value(v) for k, v in t.kwargs.items()}
        # keys named after the function ("point-1f3a..."): Dask groups the tasks by that prefix,
        # learns their duration and queues a large group on the scheduler, handing each task to
        # the next free worker (the label stays in this client, for messages)
        name = re.sub(r"[^A-Za-z0-9_]+", "_", getattr(t.fn, "__name__", "task"))
        from . import plugins

        future = client.submit(
            run_on_worker if unit is None else run_unit_on_worker,
            (self._code, plugins.loaded()),
            None if unit is None else unit.scenario,
            t.fn,
            args,
            kwargs,
            key=f"{name}-{uuid.uuid4().hex}",
            pure=False,
            priority=priority,
        )
        submitted[id(t)] = future
        return future

    def close(self) -> None:
        """Close the client and the local cluster (a scheduler's cluster stays up)."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def __enter__(self) -> "DaskRunner":
        """Inside ``with``, what the client computes itself (fig3, an experiment's training
        data) runs with one BLAS thread, as on the workers and with ``--workers 1``
        (tasks.one_blas_thread): the same bits wherever it runs."""
        self._limits = one_blas_thread()
        self._limits.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        finally:
            limits, self._limits = self._limits, None
            if limits is not None:
                limits.__exit__(None, None, None)


__all__ = [
    "CONNECT_TIMEOUT_S",
    "ClusterError",
    "DaskRunner",
    "LOCAL_CLUSTER_CONFIG",
    "WORKER_ENV",
    "check_scheduler_address",
    "check_workers",
    "default_workers",
    "run_on_worker",
    "run_unit_on_worker",
    "shared_value",
    "worker_memory_bytes",
]
