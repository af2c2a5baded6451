"""isac-eval on Dask distributed (python/isac/cluster.py, tasks.py): every experiment's units on
a real local cluster of two worker processes give the files of the in-process run, bit for bit;
--method merges its frame chunks to the one-pass values; a failing unit, a killed worker, an
interrupted client, an unreachable scheduler; `dask scheduler` + two `dask worker` processes,
and TLS; the local cluster on the loopback only, one BLAS thread per worker, the memory check
per worker; --workers 1 imports no Dask.

One local cluster (2 workers, 1 thread each) serves the module: the command line reaches it
through --scheduler, as it would reach any running cluster."""

import functools
import json
import operator
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from conftest import fig6_weights
from test_transceiver import PINNED

from gnuradio.isac import cluster as cluster_module
from gnuradio.isac import experiments
from gnuradio.isac.cli import eval as isac_eval
from gnuradio.isac.cluster import ClusterError, DaskRunner, run_on_worker
from gnuradio.isac.evaluation import frame_chunks
from gnuradio.isac.experiments import tradeoff
from gnuradio.isac.experiments.resume import ResultStore
from gnuradio.isac.tasks import SerialRunner, Unit, UnitsFailed, task

# the faulty stand-ins below travel to the workers by value (the workers do not import tests/)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

REAL_POINT = tradeoff.point
SMALL = ["--set", "run.frames=20", "--set", "run.calibration_frames=20", "--set", "receiver.angle_grid=180"]
SMALL += ["--set", "receiver.delay_grid=60", "--no-progress"]
DASK = Path(sys.executable).parent / "dask"


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of 2 worker processes (1 thread each), as --workers 2 starts one."""
    runner = DaskRunner(2, progress=False)
    runner.client()
    yield runner
    runner.close()


def run_cli(out, name, *extra):
    return isac_eval.main(["--experiment", name, "--out", str(out), "--quick", "--no-progress", *extra])


def summary(folder, name):
    """NAME.json with the run's own folder written as OUT (weights paths differ by folder only)."""
    return json.loads((folder / f"{name}.json").read_text().replace(str(folder), "OUT"))


def numbers(value):
    """A summary's results without the wall-clock entries and where the weights came from."""
    if isinstance(value, dict):
        return {k: numbers(v) for k, v in value.items() if "seconds" not in k and k != "weights"}
    if isinstance(value, list):
        return [numbers(v) for v in value]
    return value


def same_files(dask_out, serial_out, name):
    assert (dask_out / f"{name}.csv").read_bytes() == (serial_out / f"{name}.csv").read_bytes()
    assert numbers(summary(dask_out, name)["results"]) == numbers(summary(serial_out, name)["results"])


# --- results: the same as in this process ------------------------------------------------------


@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_experiment_on_two_workers_equals_the_in_process_run(name, quick_experiments, cluster, tmp_path):
    """--quick on the 2-worker cluster: the CSV bit for bit and every number of the summary as
    the --workers 1 run (conftest.quick_experiments); every unit ran on the cluster. The tiny
    weights that fig5 and impairments train in the client are taken from that run."""
    out = tmp_path / name
    extra = fig6_weights(name, quick_experiments)
    if name in ("fig5", "impairments"):
        extra = ["--weights-dir", str(quick_experiments[name] / "weights-quick")]
    assert run_cli(out, name, "--scheduler", cluster.address, *extra) == 0
    same_files(out, quick_experiments[name], name)
    s = summary(out, name)
    assert s["resume"]["units_reused"] == 0
    if name == "fig3":  # one frame, no units: no task was sent
        assert s["runner"]["workers"] is None and s["resume"]["units_computed"] == 0
    else:
        assert s["runner"] == {"where": f"the Dask scheduler at {cluster.address}", "workers": 2}
        assert s["resume"]["units_computed"] >= 2


@pytest.mark.parametrize("method, receiver", sorted(PINNED))
def test_method_chunks_merge_to_the_one_pass_values(method, receiver, cluster, tmp_path):
    """isac-eval --method on the cluster against one pass in this process (--workers 1), on the
    runs pinned in test_transceiver.py: the calibration peaks joined (the same threshold, bit
    for bit), the test chunks' Scores merged (the count ratios p_md, p_fa, SER exactly, the
    means GOSPA and RMSEs to 1e-12); both within the pinned values' 1e-6."""
    args = ["--method", method, "--receiver", receiver, "--kernel", "cpp", "--no-progress"]
    args += ["--set", "run.frames=60", "--set", "run.calibration_frames=60", "--set", "run.batch=30"]
    if method == "impairment":
        from gnuradio.isac import weights as W

        args += ["--weights", W.default_weights_path()]
    assert frame_chunks(60, 30, 4 * 2) == [(0, 30), (30, 30)]  # two chunks per stream on two workers
    one, merged = tmp_path / "one.json", tmp_path / "merged.json"
    assert isac_eval.main([*args, "--workers", "1", "--json", str(one)]) == 0
    assert isac_eval.main([*args, "--scheduler", cluster.address, "--json", str(merged)]) == 0
    a, b = json.loads(one.read_text()), json.loads(merged.read_text())
    for key in ("threshold", "p_md", "p_fa", "ser", "frames", "method", "receiver", "scenario_hash"):
        assert b[key] == a[key], key
    for key in ("gospa", "angle_rmse_deg", "range_rmse_m"):
        assert b[key] == pytest.approx(a[key], rel=1e-12, abs=0.0), key
    for key, want in PINNED[(method, receiver)].items():
        assert b[key] == pytest.approx(want, rel=1e-6), key


def test_frame_chunks_are_whole_batches_covering_the_frames():
    for total, batch, parts in [(60, 30, 8), (1000, 50, 8), (1001, 50, 8), (7, 50, 4), (100, 1, 3), (0, 10, 2)]:
        chunks = frame_chunks(total, batch, parts)
        assert len(chunks) <= parts
        assert [f for f, _ in chunks] == list(range(0, total, chunks[0][1] if chunks else 1))[: len(chunks)]
        assert sum(n for _, n in chunks) == total
        assert all(f % batch == 0 for f, _ in chunks) and all(n % batch == 0 for _, n in chunks[:-1])
    with pytest.raises(ValueError, match="parts must be >= 1, got 0"):
        frame_chunks(10, 5, 0)


def test_isac_eval_workers_2_starts_its_own_local_cluster(tmp_path):
    """--workers 2: the command line's own cluster (started and closed by the run) gives the
    in-process result; the pinned threshold exactly, the means to 1e-12."""
    base = ["--method", "perfect", "--kernel", "cpp", *SMALL, "--set", "run.batch=10"]
    one, two = tmp_path / "1.json", tmp_path / "2.json"
    assert isac_eval.main([*base, "--workers", "1", "--json", str(one)]) == 0
    assert isac_eval.main([*base, "--workers", "2", "--json", str(two)]) == 0
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    for key in ("threshold", "p_md", "p_fa", "ser", "frames", "method", "receiver", "scenario_hash"):
        assert a[key] == b[key], key
    for key in ("gospa", "angle_rmse_deg", "range_rmse_m"):
        assert b[key] == pytest.approx(a[key], rel=1e-12, abs=0.0), key


# --- faults ---------------------------------------------------------------------------------------


def failing_point(eta, scenario, base, spec, *args):
    """tradeoff.point, but the baseline point at ``eta`` raises."""
    if spec.key == "baseline" and scenario.transmitter["eta"] == eta:
        raise ValueError(f"injected fault at eta {eta:.4f}")
    return REAL_POINT(scenario, base, spec, *args)


@pytest.mark.parametrize("where", ["in-process", "cluster"])
def test_a_failing_unit_is_named_the_others_are_kept_and_a_rerun_computes_it_alone(
    where, quick_experiments, cluster, tmp_path, monkeypatch, capsys
):
    extra = ["--workers", "1"] if where == "in-process" else ["--scheduler", cluster.address]
    eta = tradeoff.SWEEPS["fig9"][1][0][1]
    monkeypatch.setattr(tradeoff, "point", functools.partial(failing_point, eta))
    assert run_cli(tmp_path, "fig9", *extra) == 1
    err = capsys.readouterr().err
    assert f"error: unit fig9 baseline eta={eta:.4g} phi=0 failed: ValueError: injected fault at eta {eta:.4f}" in err
    assert '(key {"curve": "baseline", "label": "baseline (OMP, nominal array)", "method": "baseline"' in err
    assert "error: 1 of 9 units failed (each said above)" in err and ".partial/fig9/" in err and "missing" in err
    assert not (tmp_path / "fig9.csv").exists()
    assert len(list((tmp_path / ".partial" / "fig9").glob("*.json"))) == 8

    monkeypatch.setattr(tradeoff, "point", REAL_POINT)
    assert run_cli(tmp_path, "fig9", *extra) == 0
    s = summary(tmp_path, "fig9")
    assert (s["resume"]["units_reused"], s["resume"]["units_computed"]) == (8, 1)
    same_files(tmp_path, quick_experiments["fig9"], "fig9")


def point_that_kills_its_worker_once(marker, *args):
    """tradeoff.point, but the first call anywhere kills its own worker process (SIGKILL)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return REAL_POINT(*args)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_is_survived(quick_experiments, cluster, tmp_path, monkeypatch):
    """A worker killed in the middle of a unit: Dask runs the unit again elsewhere, the run ends
    with the files of the in-process run, and the nanny brings the worker back."""
    marker = tmp_path / "killed.pid"
    monkeypatch.setattr(tradeoff, "point", functools.partial(point_that_kills_its_worker_once, str(marker)))
    assert run_cli(tmp_path / "out", "fig9", "--scheduler", cluster.address) == 0
    victim = int(marker.read_text())
    assert victim != os.getpid() and not _alive(victim)
    same_files(tmp_path / "out", quick_experiments["fig9"], "fig9")
    cluster.client().wait_for_workers(2, timeout=60)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a child of this process that died but was not reaped yet
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_an_interrupted_client_resumes_to_the_same_files(quick_experiments, cluster, tmp_path, monkeypatch, capsys):
    """Ctrl-C in the client after 3 units arrived: those 3 are in the store (each written as it
    arrived), the rest is cancelled; the rerun computes the other 6 and writes the same files."""
    real_advance, calls = cluster_module.advance, []

    def advance(bar, unit):
        calls.append(unit.label)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_advance(bar, unit)

    monkeypatch.setattr(cluster_module, "advance", advance)
    assert run_cli(tmp_path, "fig9", "--scheduler", cluster.address) == 130
    assert "interrupted: the finished units are kept in" in capsys.readouterr().err
    assert len(list((tmp_path / ".partial" / "fig9").glob("*.json"))) == 3
    monkeypatch.setattr(cluster_module, "advance", real_advance)
    assert run_cli(tmp_path, "fig9", "--scheduler", cluster.address) == 0
    s = summary(tmp_path, "fig9")
    assert (s["resume"]["units_reused"], s["resume"]["units_computed"]) == (3, 6)
    same_files(tmp_path, quick_experiments["fig9"], "fig9")


def test_unreachable_scheduler_fails_within_seconds_naming_the_address(tmp_path, capsys):
    with socket.socket() as s:  # a free port: nothing listens there once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    for argv in ([*SMALL, "--scheduler", address], ["--experiment", "fig9", "--out", str(tmp_path), "--quick"]):
        if argv[0] == "--experiment":
            argv = [*argv, "--no-progress", "--scheduler", address]
        t0 = time.monotonic()
        assert isac_eval.main(argv) == 2
        assert time.monotonic() - t0 < 4 * cluster_module.CONNECT_TIMEOUT_S
        err = capsys.readouterr().err
        assert f"error: --scheduler {address}: no Dask scheduler answered within 5 s" in err
        assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--workers", "0"], "argument --workers: must be an integer >= 1, got '0'"),
        (["--workers", "two"], "argument --workers: must be an integer >= 1, got 'two'"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "--workers and --scheduler exclude each other"),
        (["--scheduler", "http://h:1"], "--scheduler must be tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT"),
        (["--scheduler", "tcp://h:70000"], "(port 1-65535), got 'tcp://h:70000'"),
    ],
)
def test_bad_workers_or_scheduler_exit_2_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        isac_eval.main([*SMALL, *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_scheduler_addresses_default_to_tcp():
    assert cluster_module.check_scheduler_address("localhost:8786") == "tcp://localhost:8786"
    assert cluster_module.check_scheduler_address("tls://10.0.0.2:8786") == "tls://10.0.0.2:8786"
    assert cluster_module.check_scheduler_address("tcp://[::1]:8786") == "tcp://[::1]:8786"


# --- one or many machines ------------------------------------------------------------------------


def _start(cmd, log, env):
    return subprocess.Popen(
        [str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _scheduler_address(scheduler_file, procs, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if scheduler_file.is_file() and scheduler_file.stat().st_size:
            try:
                return json.loads(scheduler_file.read_text())["address"]
            except ValueError:  # written but not complete yet
                pass
        assert all(p.poll() is None for p in procs), "the scheduler stopped"
        time.sleep(0.1)
    raise AssertionError("the scheduler wrote no address")


#: the environment docs/distributed.md gives remote `dask worker` / `dask scheduler` processes:
#: the settings of cluster.LOCAL_CLUSTER_CONFIG as Dask's environment variables
QUIET_EVENT_LOOPS = {
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
    "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "5s",
}


def test_the_documented_dask_variables_are_the_local_clusters_settings():
    """docs/distributed.md lists QUIET_EVENT_LOOPS for remote workers; each names a key of
    cluster.LOCAL_CLUSTER_CONFIG with its value, as Dask's configuration reads it."""
    import copy

    import dask.config

    config = dask.config.update(copy.deepcopy(dask.config.config), dask.config.collect_env(QUIET_EVENT_LOOPS))
    local = {k: v for k, v in cluster_module.LOCAL_CLUSTER_CONFIG.items() if "pre-spawn" not in k}
    assert {k: dask.config.get(k, config=config) for k in local} == local
    assert {k: dask.config.get(k) for k in local} != local  # not Dask's defaults
    doc = (Path(__file__).resolve().parents[1] / "docs" / "distributed.md").read_text()
    assert all(f"{k}={v}" in doc for k, v in QUIET_EVENT_LOOPS.items())


def _wait_for_workers(address, n, security=None):
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False, security=security) as client:
        client.wait_for_workers(n, timeout=90)


def test_dask_scheduler_and_two_dask_worker_processes(quick_experiments, tmp_path):
    """`dask scheduler` and two `dask worker` processes on localhost, as on several machines:
    isac-eval --scheduler gives the files of the in-process run. They are started as
    docs/distributed.md advises, with Dask's event loops quieted by three DASK_ variables,
    which reach both (no profiler, a 1 s tick, a 5 s system monitor)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed module
    env.update(QUIET_EVENT_LOOPS)
    sched_file = tmp_path / "scheduler.json"
    procs = []
    with open(tmp_path / "cluster.log", "w") as log:
        try:
            procs.append(
                _start(
                    [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
                    + ["--scheduler-file", sched_file],
                    log,
                    env,
                )
            )
            address = _scheduler_address(sched_file, procs)
            assert address.startswith("tcp://127.0.0.1:")
            for _ in range(2):
                cmd = [DASK, "worker", address, "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1"]
                procs.append(_start(cmd + ["--no-dashboard"], log, env))
            _wait_for_workers(address, 2)
            from distributed import Client

            with Client(address, timeout=30, set_as_default=False) as client:
                assert list(client.run(_event_loop_timers).values()) == [(False, 1000, 5000)] * 2
                assert client.run_on_scheduler(_event_loop_timers) == (False, 1000, 5000)
            assert run_cli(tmp_path / "out", "fig9", "--scheduler", address) == 0
        finally:
            _stop(procs)
    same_files(tmp_path / "out", quick_experiments["fig9"], "fig9")
    assert summary(tmp_path / "out", "fig9")["runner"]["workers"] == 2


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, certificate, key): a throw-away CA and one certificate it signs for
    127.0.0.1, which the scheduler, the worker and the client all present (openssl)."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "key.pem", "req.csr", "cert.pem"))
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")

    def openssl(*args):
        subprocess.run(
            ["openssl", *map(str, args)], check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL
        )

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        ca_key,
        "-out",
        ca,
        "-days",
        "2",
        "-subj",
        "/CN=isac-test-ca",
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "2",
        "-extfile",
        ext,
    )
    return ca, cert, key


def test_tls_scheduler_with_dasks_tls_configuration(tmp_path, capsys):
    """--scheduler tls://...: with Dask's TLS configuration (distributed.comm.tls.*: the CA and
    the client's certificate and key) the run works; without it, it fails within seconds,
    naming the address and the configuration it needs."""
    import dask

    ca, cert, key = _certificates(tmp_path)
    tls = ["--tls-ca-file", ca, "--tls-cert", cert, "--tls-key", key]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    sched_file = tmp_path / "scheduler.json"
    procs = []
    config = {
        "distributed.comm.tls.ca-file": str(ca),
        "distributed.comm.tls.client.cert": str(cert),
        "distributed.comm.tls.client.key": str(key),
    }
    with open(tmp_path / "cluster.log", "w") as log:
        try:
            cmd = [DASK, "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
            procs.append(_start(cmd + ["--scheduler-file", sched_file, *tls], log, env))
            address = _scheduler_address(sched_file, procs)
            assert address.startswith("tls://127.0.0.1:")
            cmd = [DASK, "worker", address, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"]
            procs.append(_start(cmd + tls, log, env))
            out = tmp_path / "m.json"
            with dask.config.set(config):
                from distributed.security import Security

                _wait_for_workers(address, 1, Security())
                assert isac_eval.main([*SMALL, "--method", "perfect", "--scheduler", address, "--json", str(out)]) == 0
            t0 = time.monotonic()
            assert isac_eval.main([*SMALL, "--method", "perfect", "--scheduler", address]) == 2
            assert time.monotonic() - t0 < 4 * cluster_module.CONNECT_TIMEOUT_S
        finally:
            _stop(procs)
    err = capsys.readouterr().err
    assert f"error: --scheduler {address}: no Dask scheduler answered within 5 s" in err
    assert "tls:// needs Dask's TLS configuration (distributed.comm.tls.ca-file, .client.cert, .client.key" in err
    one = tmp_path / "one.json"
    assert isac_eval.main([*SMALL, "--method", "perfect", "--workers", "1", "--json", str(one)]) == 0
    a, b = json.loads(one.read_text()), json.loads(out.read_text())
    assert (a["threshold"], a["p_md"], a["frames"]) == (b["threshold"], b["p_md"], b["frames"])
    assert b["gospa"] == pytest.approx(a["gospa"], rel=1e-12)


# --- the local cluster, the workers, the client --------------------------------------------------


def _listening(pid):
    import psutil

    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections("inet") if c.status == "LISTEN"}


def _event_loop_timers(dask_worker=None, dask_scheduler=None):
    """(a profiler runs, ms between watchdog ticks, ms between system-monitor updates) of a
    Dask server (client.run / run_on_scheduler pass it by these names)."""
    server = dask_worker or dask_scheduler
    callbacks = server.periodic_callbacks
    return "profile" in callbacks, callbacks["tick"].callback_time, callbacks["monitor"].callback_time


def test_local_cluster_listens_on_the_loopback_only_with_one_thread_per_worker():
    """Every socket the local cluster opens (scheduler, its HTTP endpoint, nannies in this
    process; each worker and its HTTP endpoint in theirs) is bound to 127.0.0.1; the workers
    are other processes with one BLAS / OpenMP thread each (cluster.WORKER_ENV)."""
    import psutil

    before = _listening(os.getpid())
    with DaskRunner(2, progress=False) as runner:
        client = runner.client()
        assert runner.address.startswith("tcp://127.0.0.1:")
        workers = client.run(os.getpid)
        assert len(workers) == 2 and os.getpid() not in workers.values()
        opened = _listening(os.getpid()) - before
        assert opened and {ip for ip, _ in opened} == {"127.0.0.1"}
        for pid in workers.values():
            assert psutil.Process(pid).ppid() != 0
            ips = {ip for ip, _ in _listening(pid)}
            assert ips == {"127.0.0.1"}, (pid, ips)
        env = client.run(lambda: {k: os.environ.get(k) for k in cluster_module.WORKER_ENV})
        assert all(e == cluster_module.WORKER_ENV for e in env.values())
        # not Dask's default MALLOC_TRIM_THRESHOLD_ (large temporaries mmap'ed afresh: 1.4-1.9x slower)
        assert set(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == {None}
        # nor Dask's busy event loops (cluster.LOCAL_CLUSTER_CONFIG): no profiler sampling the
        # units, a watchdog tick every 1 s and a system monitor every 5 s, in the workers and the
        # scheduler (their periodic callbacks, in milliseconds)
        timers = client.run(_event_loop_timers)
        assert list(timers.values()) == [(False, 1000, 5000)] * 2
        assert client.run_on_scheduler(_event_loop_timers) == (False, 1000, 5000)
        # the units run there: other processes, one at a time per worker
        results = runner.run([Unit(task(os.getpid), label=f"pid {i}") for i in range(4)])
        assert set(results) <= set(workers.values())
    assert _listening(os.getpid()) - before == set()  # closed with the run


def big_scenario():
    from gnuradio.isac.config import Scenario

    return Scenario.default().with_overrides({"scene.max_targets": 1_000_000})


@pytest.mark.parametrize("where", ["in-process", "cluster"])
def test_the_rest_go_on_after_a_failing_unit_and_the_bar_counts_units_and_frames(where, cluster, tmp_path, capsys):
    """A runner computes every unit it can and stores it; the failures come at the end, each
    with its label and key. On a worker a unit's scenario must fit in that worker's memory:
    ResourceError naming the key (resources.check_memory); the bar shows units and frames."""
    runner = SerialRunner(progress=True) if where == "in-process" else cluster
    store = ResultStore(str(tmp_path), {"test": where})
    units = [
        Unit(task(operator.add, 1, 2), {"u": 1}, label="first", frames=10),
        Unit(task(operator.truediv, 1, 0), {"u": 2}, label="divides by zero", frames=10),
        Unit(task(operator.mul, 3, 4), {"u": 3}, label="third", frames=10),
    ]
    if where == "cluster":
        units.append(Unit(task(operator.add, 5, 5), {"u": 4}, label="too big", scenario=big_scenario(), frames=10))
    old, runner.progress = runner.progress, True
    try:
        with pytest.raises(UnitsFailed) as exc:
            runner.run(units, store, desc="test")
    finally:
        runner.progress = old
    failed = {f.label: f for f in exc.value.failures}
    assert set(failed) == ({"divides by zero", "too big"} if where == "cluster" else {"divides by zero"})
    assert failed["divides by zero"].error.startswith("ZeroDivisionError") and failed["divides by zero"].key == {"u": 2}
    if where == "cluster":
        assert failed["too big"].error.startswith(
            "ResourceError: scene.max_targets = 1000000: a run needs an estimated"
        )
    err = capsys.readouterr().err
    assert 'error: unit divides by zero failed: ZeroDivisionError: division by zero (key {"u": 2})' in err
    n = len(units)
    assert f"{n}/{n}" in err and f"{10 * n}/{10 * n} frames" in err
    again = ResultStore(str(tmp_path), {"test": where})
    assert again.lookup({"u": 1}) == (True, 3) and again.lookup({"u": 3}) == (True, 12)
    assert again.lookup({"u": 2}) == (False, None)


def test_a_worker_with_other_code_is_refused(cluster):
    """A unit is never computed by other code than the client's (its result would be stored
    under the client's code digest): the worker names itself and the digests."""
    with pytest.raises(ClusterError, match="runs other gr-isac code .*install the same build"):
        run_on_worker(("0" * 64, ()), None, operator.add, (1, 2), {})
    error = (
        cluster.client().submit(run_on_worker, ("0" * 64, ()), None, operator.add, [1, 2], {}, pure=False).exception()
    )
    assert isinstance(error, ClusterError) and "worker tcp://127.0.0.1:" in str(error)


def test_workers_1_imports_no_dask_and_the_default_is_every_cpu(tmp_path):
    experiment = ["--experiment", "fig7", "--quick", "--no-progress", "--workers", "1", "--out", str(tmp_path)]
    code = (
        "import json, sys\n"
        "from gnuradio.isac.cli import eval as e\n"
        f"assert e.main({[*SMALL, '--workers', '1']!r}) == 0\n"
        f"assert e.main({experiment!r}) == 0\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'tornado'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    assert summary(tmp_path, "fig7")["runner"] == {"where": "in this process", "workers": 1}

    import argparse

    args = argparse.Namespace(workers=None, scheduler=None, no_progress=True)
    default = isac_eval.make_runner(args)
    if cluster_module.default_workers() > 1:
        assert isinstance(default, DaskRunner) and default.local_workers == cluster_module.default_workers()
    else:
        assert isinstance(default, SerialRunner)
    assert cluster_module.default_workers() == len(os.sched_getaffinity(0))


def test_the_client_computes_with_one_blas_thread_like_each_worker():
    """isac-eval's own process (tasks.SerialRunner for --workers 1, the Dask client of
    cluster.DaskRunner) limits numpy's BLAS to one thread inside ``with``, as cluster.WORKER_ENV
    does on each Dask worker (one core per unit; a product's bits do not depend on where it ran),
    and gives the threads back after."""
    import numpy as np  # noqa: F401  (numpy's BLAS is loaded)
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    assert before, "numpy's BLAS library is not seen by threadpoolctl"
    seen = []

    def unit():
        seen.append(blas_threads())
        return 1

    with SerialRunner(progress=False) as runner:
        assert runner.run([Unit(task(unit))]) == [1]
    assert seen == [[1] * len(before)] and blas_threads() == before
    with DaskRunner(2, progress=False):  # no cluster is started: nothing is computed on it
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


def test_local_workers_share_the_memory(tmp_path, monkeypatch, capsys):
    """N local workers hold a batch each at once: a scenario that fits once but not N times is
    refused before any work, naming --workers (resources.check_memory on 1/N of the memory)."""
    from gnuradio.isac import resources
    from gnuradio.isac.config import Scenario

    sc = Scenario.load(None, [a for a in SMALL if "=" in a])
    need = resources.estimate_memory_bytes(sc, "omp")
    monkeypatch.setenv(resources.LIMIT_ENV, str(int(1.5 * need)))
    assert isac_eval.main([*SMALL, "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "a run needs an estimated" in err and "(the share of one of 2 local workers: or lower --workers)" in err
    assert isac_eval.main([*SMALL, "--workers", "1", "--json", str(tmp_path / "ok.json")]) == 0
