"""Data-parallel isac-train (trainer/distributed.py): torchrun environment, batch sharding, and
the DDP correctness test -- two gloo processes on the CPU train the same weights as one
process with the same global batch and seed."""
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

import torch  # a hard dependency (tools/requirements.txt): a missing torch must fail, not skip
torch.set_num_threads(1)

from gnuradio.isac import weights as W  # noqa: E402
from gnuradio.isac.config import Scenario  # noqa: E402
from gnuradio.isac.trainer import distributed as D  # noqa: E402
from gnuradio.isac.trainer.train import DRAW_CHUNK, Batch, Trainer, TrainOptions, train  # noqa: E402

TINY = ["array.antennas=16", "ofdm.subcarriers=32", "receiver.delay_grid=40", "transmitter.beam_grid=180",
        "scene.max_targets=2", "array.spacing_std_m=4e-4"]
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
    full = t.draw_frames(7, 0, batch, 30.0)
    parts = [t.draw_frames(7, *D.shard(batch, r, world), 30.0) for r in range(world)]
    for whole, *pieces in zip(fields(full), *map(fields, parts)):
        assert torch.equal(whole, torch.cat(pieces))
    assert full.lo.shape == (batch,)


def test_batches_of_one_chunk_are_the_step_generators_draw():
    """Chunk 0 is drawn by the step's generator: batches of <= DRAW_CHUNK frames (the quick
    profile) are the same as before the chunked draw."""
    t = Trainer(SC, options(batch=DRAW_CHUNK))
    for a, b in zip(fields(t.draw(t.generator(4), DRAW_CHUNK, 20.0)), fields(t.draw_frames(4, 0, DRAW_CHUNK, 20.0))):
        assert torch.equal(a, b)


def _torchrun(tmp_path, out, extra):
    args = ["--out", str(out), "--no-progress", "--threads", "1", "--quick", "--iterations", str(FLAGS["iterations"]),
            "--batch", str(FLAGS["batch"]), "--val-every", "100", "--val-frames", "8", "--checkpoint-every", "100",
            "--curriculum-steps", "0"] + extra + [a for s in TINY for a in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if k not in D.ENV_KEYS + ("MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "gnuradio.isac.cli.train"] + args
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("method,extra", [("impairment", []), ("dictionary", ["--dictionary-points", "60"])])
def test_two_gloo_processes_train_the_single_process_weights(tmp_path, method, extra):
    """Impairment: 3 data-parallel steps from the start; dictionary (60-point grid): the 2
    processes resume a 1-process checkpoint of step 1 and train steps 2-3."""
    kw = {"dictionary_points": 60} if extra else {}
    if method == "dictionary":
        train(SC, options(method=method, iterations=1, **kw), str(tmp_path / "start.safetensors"), progress=False,
              log=lambda *_: None)
        extra = extra + ["--resume", str(tmp_path / "start.ckpt.safetensors")]
    out2 = tmp_path / "ddp.safetensors"
    text = _torchrun(tmp_path, out2, ["--method", method] + extra)
    assert text.count("trained 3 steps") == 1  # only rank 0 reports
    out1 = tmp_path / "one.safetensors"
    train(SC, options(method=method, **kw), str(out1), progress=False, log=lambda *_: None)
    w1, w2 = W.load(out1, SC), W.load(out2, SC)
    assert w2.steps == 3 and w2.method == method
    key = "spacings_m" if method == "impairment" else "dictionary"
    initial = Trainer(SC, options(method=method, **kw)).weight_tensors()[key]
    moved = np.abs(w1.tensors[key] - initial).max()
    assert moved > 1e-6  # training did change the weights ...
    # ... and both runs changed them alike (summation order of the gradients differs)
    np.testing.assert_allclose(w2.tensors[key], w1.tensors[key], rtol=0, atol=1e-3 * moved)
    np.testing.assert_allclose(w2.tensors["angle_grid_rad"], w1.tensors["angle_grid_rad"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ddp")) == [
        "ddp.ckpt.safetensors", "ddp.csv", "ddp.png", "ddp.safetensors"]


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
