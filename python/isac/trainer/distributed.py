"""Data-parallel training under torchrun (DistributedDataParallel), for isac-train.

    torchrun --standalone --nproc_per_node=G -m gnuradio.isac.cli.train --device cuda ...

torchrun starts one process per GPU and sets RANK, WORLD_SIZE, LOCAL_RANK (and
MASTER_ADDR/MASTER_PORT); ``from_environment`` reads them, ``init`` joins the process group
(nccl on cuda, gloo on cpu) and picks the rank's device (cuda:LOCAL_RANK). The trainer then

  * draws only its slice ``shard(B, rank, world)`` of each step's global batch, from the same
    per-step, per-chunk generators as a single process (Trainer.draw_frames), so the union of
    the slices over the ranks IS the single-process batch;
  * computes sum(per-frame loss) * world / B on its slice, so that DDP's gradient average over
    the ranks equals the gradient of the single-process batch mean (also for unequal slices);
  * lets only rank 0 validate, log, show the progress bar and write checkpoints, CSV, PNG and
    weights; every rank reads a --resume checkpoint.

Before joining, ``check_rendezvous`` makes sure MASTER_ADDR resolves and its TCP store answers
within ``connect_timeout_s``: torch alone retries for the whole process-group timeout (30 min
here). torchrun's own agent hangs the same way, before any worker starts, where --standalone
meets a machine whose host name does not resolve; there, pin torchrun to the loopback (one
command line):

    GLOO_SOCKET_IFNAME=lo torchrun --nnodes=1 --nproc_per_node=G --rdzv-backend=c10d
        --rdzv-endpoint=127.0.0.1:0 --local-addr=127.0.0.1 -m gnuradio.isac.cli.train ...

Nothing here is imported unless torch.distributed is used.
"""

from __future__ import annotations

import datetime
import inspect
import os
import socket
import time
from dataclasses import dataclass, replace
from typing import Mapping

import torch

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
CONNECT_TIMEOUT_S = 30.0  # torchrun's store is up before its workers start: seconds are plenty
LOOPBACK_HINT = (
    "on one machine pin torchrun to the loopback (--rdzv-backend=c10d --rdzv-endpoint=127.0.0.1:0 "
    "--local-addr=127.0.0.1, which sets MASTER_ADDR=127.0.0.1, and GLOO_SOCKET_IFNAME=lo); across "
    "machines MASTER_ADDR must be an address of node 0 that resolves and is reachable here, "
    "GLOO_SOCKET_IFNAME the network interface that reaches it"
)


class RendezvousError(ConnectionError):
    """The torchrun rendezvous (MASTER_ADDR:MASTER_PORT) cannot be resolved or reached."""


@dataclass(frozen=True)
class Context:
    """Where this process stands in a data-parallel run (the default: a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # set by init(): "nccl" | "gloo"

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Context()


def from_environment(env: Mapping[str, str] | None = None) -> Context:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK) as a Context; SINGLE when
    WORLD_SIZE is absent or 1. Raises ValueError on an inconsistent environment."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return SINGLE
    try:
        world = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ValueError(f"torchrun environment: {exc}") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    if world == 1:
        return SINGLE
    return Context(rank, world, local)


def rank_device(ctx: Context, device: str) -> str:
    """The torch device of this rank: cuda -> cuda:LOCAL_RANK (one GPU per process), else as given."""
    if ctx.enabled and device.startswith("cuda"):
        return f"cuda:{ctx.local_rank}"
    return device


def check_rendezvous(
    ctx: Context, env: Mapping[str, str] | None = None, timeout_s: float = CONNECT_TIMEOUT_S
) -> tuple[str, int]:
    """MASTER_ADDR and MASTER_PORT of an env:// rendezvous, once the address resolves and, unless
    this rank hosts the store itself (rank 0 outside torchrun), a TCP connection to it succeeds
    within ``timeout_s`` seconds (retried every 0.2 s). RendezvousError otherwise, at once for
    a name that does not resolve; the message says how to pin a one-machine run to the loopback."""
    env = os.environ if env is None else env
    addr, port_text = env.get("MASTER_ADDR", ""), env.get("MASTER_PORT", "")
    where = f"rank {ctx.rank}: rendezvous MASTER_ADDR={addr or '(unset)'} MASTER_PORT={port_text or '(unset)'}"
    if not addr or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise RendezvousError(f"{where}: needs a host and a port 1-65535 (torchrun sets both); {LOOPBACK_HINT}")
    port = int(port_text)
    try:
        socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RendezvousError(f"{where}: the host name does not resolve ({exc}); {LOOPBACK_HINT}") from None
    if ctx.rank == 0 and env.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return addr, port  # rank 0 starts the store in init_process_group
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((addr, port), timeout=max(0.05, min(2.0, deadline - time.monotonic()))):
                return addr, port
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise RendezvousError(
                    f"{where}: no TCP store answers within {timeout_s:g} s ({exc}); {LOOPBACK_HINT}"
                ) from None
        time.sleep(0.2)


def init(ctx: Context, device: str, timeout_s: float = 1800.0, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Context:
    """Join the process group of a torchrun job (env:// rendezvous): nccl for cuda, gloo
    otherwise. A no-op for a single process. Returns ``ctx`` with its backend. RendezvousError
    (an OSError) within about ``connect_timeout_s`` seconds when MASTER_ADDR:MASTER_PORT does
    not resolve or answer (check_rendezvous); ``timeout_s`` bounds every later collective."""
    if not ctx.enabled:
        return ctx
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        if torch.cuda.device_count() <= ctx.local_rank:
            raise ValueError(
                f"rank {ctx.rank}: LOCAL_RANK {ctx.local_rank} but torch sees "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
        torch.cuda.set_device(ctx.local_rank)
    if not dist.is_initialized():
        check_rendezvous(ctx, timeout_s=connect_timeout_s)
        kwargs = {"device_id": torch.device(f"cuda:{ctx.local_rank}")} if backend == "nccl" else {}
        dist.init_process_group(
            backend, rank=ctx.rank, world_size=ctx.world_size, timeout=datetime.timedelta(seconds=timeout_s), **kwargs
        )
    return replace(ctx, backend=backend)


def shutdown() -> None:
    """Leave the process group (after a barrier, so no rank exits while another still writes)."""
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()  # free DDP reducers still holding work of the group before it goes
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def shard(batch: int, rank: int, world: int) -> tuple[int, int]:
    """Frames [start, stop) of a global batch of ``batch`` frames that ``rank`` of ``world``
    trains on: contiguous, sizes differ by at most one, their union is range(batch)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} not in a world of {world}")
    if batch < world:
        raise ValueError(f"batch {batch} is smaller than the number of processes {world}")
    return rank * batch // world, (rank + 1) * batch // world


def wrap(module: torch.nn.Module, ctx: Context, device: torch.device) -> torch.nn.Module:
    """``module`` under DistributedDataParallel (gradients averaged over the ranks in the
    backward pass). Its buffers are constant grids: not re-broadcast every step."""
    if not ctx.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    kwargs = {"device_ids": ids, "output_device": ids[0] if ids else None}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        kwargs["forward_sync_buffers"] = False  # torch >= 2.13 (broadcast_buffers is deprecated there)
    else:
        kwargs["broadcast_buffers"] = False
    return DistributedDataParallel(module, **kwargs)


def sum_over_ranks(value: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Sum of a (detached) tensor over the ranks (the tensor itself for a single process)."""
    if not ctx.enabled:
        return value
    import torch.distributed as dist

    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


__all__ = [
    "CONNECT_TIMEOUT_S",
    "Context",
    "ENV_KEYS",
    "RendezvousError",
    "SINGLE",
    "check_rendezvous",
    "from_environment",
    "init",
    "rank_device",
    "shard",
    "shutdown",
    "sum_over_ranks",
    "wrap",
]
