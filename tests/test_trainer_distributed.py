"""Data-parallel isac-train (trainer/distributed.py): torchrun environment, batch sharding, and
the DDP correctness test -- two gloo processes on the CPU train the same weights as one
process with the same global batch and seed. torchrun runs pinned to the loopback (its own
host name need not resolve); a rendezvous that cannot be resolved or reached fails fast."""

import dataclasses
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch  # a hard dependency (tools/requirements.txt): a missing torch must fail, not skip

torch.set_num_threads(1)

from gnuradio.isac.config import Scenario  # noqa: E402
from gnuradio.isac.trainer import distributed as D  # noqa: E402
from gnuradio.isac.trainer.train import DRAW_CHUNK, Batch, Trainer, TrainOptions, train  # noqa: E402
from gnuradio.isac.transceiver import load_weights  # noqa: E402

TINY = [
    "array.antennas=16",
    "ofdm.subcarriers=32",
    "receiver.delay_grid=40",
    "transmitter.beam_grid=180",
    "scene.max_targets=2",
    "array.spacing_std_m=4e-4",
]
SC = Scenario.default().with_overrides(TINY)
# 37 frames: two slices of 18 and 19 frames, the second one crossing the chunk boundary at 32
FLAGS = dict(iterations=3, batch=37, val_every=100, val_frames=8, checkpoint_every=100, curriculum_steps=0)


def options(**kw):
    return TrainOptions.from_profile("quick", **{**FLAGS, **kw})


def fields(b: Batch):
    return [getattr(b, f.name) for f in dataclasses.fields(Batch)]


def test_environment_and_shards():
    assert D.from_environment({}) is D.SINGLE
    assert D.from_environment({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}) is D.SINGLE
    ctx = D.from_environment({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.enabled, ctx.is_main) == (3, 8, 1, True, False)
    assert D.rank_device(ctx, "cuda") == "cuda:1" and D.rank_device(ctx, "cpu") == "cpu"
    assert D.rank_device(D.SINGLE, "cuda") == "cuda"
    with pytest.raises(ValueError):
        D.from_environment({"RANK": "2", "WORLD_SIZE": "2"})
    for batch, world in ((1500, 8), (37, 2), (5, 5), (1000, 3)):
        s = [D.shard(batch, r, world) for r in range(world)]
        assert s[0][0] == 0 and s[-1][1] == batch and all(a[1] == b[0] for a, b in zip(s, s[1:]))
        assert max(b - a for a, b in s) - min(b - a for a, b in s) <= 1
    with pytest.raises(ValueError, match="smaller"):
        D.shard(3, 0, 4)


@pytest.mark.parametrize("batch,world", [(37, 2), (100, 3), (32, 2)])
def test_union_of_rank_slices_is_the_single_process_batch(batch, world):
    t = Trainer(SC, options(batch=batch))
    full = t.sampler.draw_frames(7, 0, batch, 30.0)
    parts = [t.sampler.draw_frames(7, *D.shard(batch, r, world), 30.0) for r in range(world)]
    for whole, *pieces in zip(fields(full), *map(fields, parts)):
        assert torch.equal(whole, torch.cat(pieces))
    assert full.lo.shape == (batch,)


def test_batches_of_one_chunk_are_the_step_generators_draw():
    """Chunk 0 is drawn by the step's generator: batches of <= DRAW_CHUNK frames (the quick
    profile) are the same as before the chunked draw."""
    t = Trainer(SC, options(batch=DRAW_CHUNK))
    for a, b in zip(
        fields(t.sampler.draw(t.sampler.generator(4), DRAW_CHUNK, 20.0)),
        fields(t.sampler.draw_frames(4, 0, DRAW_CHUNK, 20.0)),
    ):
        assert torch.equal(a, b)


def _clean_env(**extra):
    """os.environ without torchrun's variables (RANK, MASTER_ADDR, PET_* options, ...), gloo on lo."""
    drop = D.ENV_KEYS + ("MASTER_ADDR", "MASTER_PORT", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("PET_", "TORCHELASTIC_"))}
    return {**env, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", **extra}


def _torchrun_cmd(extra, local_addr="127.0.0.1"):
    """torchrun on the loopback: its own store on 127.0.0.1 (a free port), MASTER_ADDR=local_addr.
    (--standalone would use the machine's host name, which hangs where it does not resolve.)"""
    args = (
        [
            "--no-progress",
            "--threads",
            "1",
            "--quick",
            "--iterations",
            str(FLAGS["iterations"]),
            "--batch",
            str(FLAGS["batch"]),
            "--val-every",
            "100",
            "--val-frames",
            "8",
            "--checkpoint-every",
            "100",
            "--curriculum-steps",
            "0",
        ]
        + extra
        + [a for s in TINY for a in ("--set", s)]
    )
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=127.0.0.1:0",
        f"--rdzv-id={uuid.uuid4()}",
        f"--local-addr={local_addr}",
        "-m",
        "gnuradio.isac.cli.train",
    ] + args


def _run(cmd, cwd, env, timeout=120):
    """Run ``cmd`` (output to files: workers that outlive it cannot block a pipe); past
    ``timeout`` s it gets SIGTERM (torchrun then stops its workers), 20 s later its process
    group SIGKILL, and the test fails with what it printed."""
    cwd = pathlib.Path(cwd)
    with open(cwd / "run.out", "w+") as out, open(cwd / "run.err", "w+") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())
    if timed_out:
        pytest.fail(f"still running after {timeout} s: {' '.join(cmd[:12])} ...\n{result.stderr[-3000:]}")
    return result


def _torchrun(tmp_path, out, extra):
    proc = _run(_torchrun_cmd(["--out", str(out)] + extra), tmp_path, _clean_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("method,extra", [("impairment", []), ("dictionary", ["--dictionary-points", "60"])])
def test_two_gloo_processes_train_the_single_process_weights(tmp_path, method, extra):
    """Impairment: 3 data-parallel steps from the start; dictionary (60-point grid): the 2
    processes resume a 1-process checkpoint of step 1 and train steps 2-3."""
    kw = {"dictionary_points": 60} if extra else {}
    if method == "dictionary":
        train(
            SC,
            options(method=method, iterations=1, **kw),
            str(tmp_path / "start.safetensors"),
            progress=False,
            log=lambda *_: None,
        )
        extra = extra + ["--resume", str(tmp_path / "start.ckpt.safetensors")]
    out2 = tmp_path / "ddp.safetensors"
    text = _torchrun(tmp_path, out2, ["--method", method] + extra)
    assert text.count("trained 3 steps") == 1  # only rank 0 reports
    out1 = tmp_path / "one.safetensors"
    train(SC, options(method=method, **kw), str(out1), progress=False, log=lambda *_: None)
    w1, w2 = load_weights(out1, SC), load_weights(out2, SC)
    assert w2.steps == 3 and w2.method == method
    key = "spacings_m" if method == "impairment" else "dictionary"
    initial = Trainer(SC, options(method=method, **kw)).weight_tensors()[key]
    moved = np.abs(w1.tensors[key] - initial).max()
    assert moved > 1e-6  # training did change the weights ...
    # ... and both runs changed them alike (summation order of the gradients differs)
    np.testing.assert_allclose(w2.tensors[key], w1.tensors[key], rtol=0, atol=1e-3 * moved)
    np.testing.assert_allclose(w2.tensors["angle_grid_rad"], w1.tensors["angle_grid_rad"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ddp")) == [
        "ddp.ckpt.safetensors",
        "ddp.csv",
        "ddp.png",
        "ddp.safetensors",
    ]


def test_cli_refuses_nn_under_torchrun_and_dictionary_points_for_nn(tmp_path, monkeypatch):
    from gnuradio.isac.cli.train import main

    out = str(tmp_path / "w.safetensors")
    with pytest.raises(SystemExit):
        main(["--method", "nn", "--quick", "--dictionary-points", "156", "--out", out])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit):
        main(["--method", "nn", "--quick", "--out", out])
    assert not (tmp_path / "w.safetensors").exists()


def _free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def test_check_rendezvous_reads_and_probes_master_addr():
    ctx = D.Context(1, 2, 1)
    for env, problem in (
        ({}, "MASTER_ADDR=(unset) MASTER_PORT=(unset): needs a host and a port 1-65535"),
        ({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "99999"}, "needs a host and a port"),
        ({"MASTER_ADDR": "nonexistent.invalid", "MASTER_PORT": "29500"}, "does not resolve"),
    ):
        with pytest.raises(D.RendezvousError, match=re.escape(problem)):
            D.check_rendezvous(ctx, env, timeout_s=1)
    with socket.socket() as server:  # a listening store: the probe connects and returns
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert D.check_rendezvous(ctx, {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}) == ("127.0.0.1", port)
    # rank 0 outside torchrun starts the store itself: only the name is checked, nothing connects
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port("127.0.0.1"))}
    assert D.check_rendezvous(D.Context(0, 2, 0), env, timeout_s=0) == ("127.0.0.1", int(env["MASTER_PORT"]))
    with pytest.raises(D.RendezvousError, match="no TCP store answers"):  # under torchrun the store must be up
        D.check_rendezvous(D.Context(0, 2, 0), {**env, "TORCHELASTIC_USE_AGENT_STORE": "True"}, timeout_s=0.5)


def test_unanswered_master_addr_fails_within_the_connect_timeout(tmp_path):
    """Nothing listens on 127.0.0.2: init gives up after its 2 s connect timeout with a message
    naming MASTER_ADDR and GLOO_SOCKET_IFNAME (torch alone retries for the 30 min pg timeout)."""
    rank = 1
    env = _clean_env(
        RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.2",
        MASTER_PORT=str(_free_port("127.0.0.2")),
    )
    code = (
        "from gnuradio.isac.trainer import distributed as D\nD.init(D.from_environment(), 'cpu', connect_timeout_s=2)"
    )
    proc = _run([sys.executable, "-c", code], tmp_path, env, timeout=60)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"gnuradio.isac.trainer.distributed.RendezvousError: rank {rank}: rendezvous "
        f"MASTER_ADDR=127.0.0.2 MASTER_PORT={env['MASTER_PORT']}: no TCP store answers within 2 s"
    )
    assert "GLOO_SOCKET_IFNAME" in last and "--local-addr=127.0.0.1" in last


def test_isac_train_under_torchrun_with_an_unresolvable_master_addr_fails_fast(tmp_path):
    """The workers are handed MASTER_ADDR=nonexistent.invalid (torchrun's --local-addr, with its
    store not shared: what a host name that does not resolve gives the workers): each rank
    stops at once with the message, and torchrun with it."""
    cmd = _torchrun_cmd(
        ["--out", str(tmp_path / "w.safetensors"), "--method", "impairment"], local_addr="nonexistent.invalid"
    )
    proc = _run(cmd, tmp_path, _clean_env(TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1"))
    assert proc.returncode != 0
    for rank in (0, 1):
        assert (
            f"error: rank {rank}: rendezvous MASTER_ADDR=nonexistent.invalid MASTER_PORT=" in proc.stderr
            and "does not resolve" in proc.stderr
        ), proc.stderr[-3000:]
    assert "GLOO_SOCKET_IFNAME" in proc.stderr
    assert not (tmp_path / "w.safetensors").exists()
