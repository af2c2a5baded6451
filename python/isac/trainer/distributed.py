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

Nothing here is imported unless torch.distributed is used.
"""
from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass, replace
from typing import Mapping

import torch

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


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


def init(ctx: Context, device: str, timeout_s: float = 1800.0) -> Context:
    """Join the process group of a torchrun job (env:// rendezvous): nccl for cuda, gloo
    otherwise. A no-op for a single process. Returns ``ctx`` with its backend."""
    if not ctx.enabled:
        return ctx
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        if torch.cuda.device_count() <= ctx.local_rank:
            raise ValueError(f"rank {ctx.rank}: LOCAL_RANK {ctx.local_rank} but torch sees "
                             f"{torch.cuda.device_count()} CUDA device(s)")
        torch.cuda.set_device(ctx.local_rank)
    if not dist.is_initialized():
        kwargs = {"device_id": torch.device(f"cuda:{ctx.local_rank}")} if backend == "nccl" else {}
        dist.init_process_group(backend, rank=ctx.rank, world_size=ctx.world_size,
                                timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
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


__all__ = ["Context", "ENV_KEYS", "SINGLE", "from_environment", "init", "rank_device", "shard", "shutdown",
           "sum_over_ranks", "wrap"]
