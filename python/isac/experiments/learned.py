"""Weights of the learned curves (figs. 5, 6, 8, 9): where each comes from, and the training
that makes a missing one, sized by the experiment's --size.

One file per curve, named by WEIGHT_FILES. A curve's weights are, in this order:
  1. ``--weights-dir DIR``/NAME (fig5 / fig6) or ``--weights W`` (fig8 / fig9, impairment only);
  2. OUT/weights-SIZE/NAME left by an earlier run into the same folder (SIZE: quick | default |
     paper; "weights" for the default size, as before);
  3. impairment learning at the quick and default sizes: the shipped
     data/weights/impairment_default.safetensors (isac-train --quick on the default array; the
     learned spacings do not depend on T_max or the sector);
  4. trained now into OUT/weights-SIZE/NAME with the size's profile (TRAINING below), on
     ``--device``; an interrupted training resumes from its checkpoint NAME.ckpt.safetensors.

Training per size (the trainer's own profiles, docs/trainer.md):
  quick    TINY_STEPS Adam steps (NNBL: TINY_STEPS / 4 per training step): plumbing only;
  default  the isac-train --quick CPU profile (B = 32, 1000 steps; NNBL B = 16, 300 + 300);
  paper    Sec. V-A: single target (fig5 / fig6) B = 3000, 100,000 steps (NNBL: 100,000 per
           training step, its 320 x 128 input map); multi-target (fig8 / fig9) B = 1500, 25,000
           steps. A GPU job (``--device cuda``); for several GPUs train with
           ``torchrun ... isac-train`` into a folder and pass it as --weights-dir / --weights.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ..config import Scenario
from .common import Context

#: weights file name per learned curve
WEIGHT_FILES = {
    "impairment": "impairment.safetensors",
    "dictionary": "dictionary.safetensors",
    "dictionary_limited": "dictionary_limited.safetensors",
    "nn": "nn.safetensors",
    "nn_limited": "nn_limited.safetensors",
}

#: on-the-fly training at --size quick: TINY_STEPS Adam steps of B = 8 (MB-ML), TINY_STEPS / 4 per
#: training step of B = 4 (NNBL); plumbing only, not a trained model
TINY_STEPS = 20

#: paper-size training (Sec. V-A, V-D): (batch, iterations) for single-target and multi-target runs
PAPER_SINGLE_TARGET = {"batch": 3000, "iterations": 100_000}
PAPER_MULTI_TARGET = {"batch": 1500, "iterations": 25_000}


def method_of(key: str) -> str:
    """The weights' method of curve ``key`` (a method, or METHOD_limited: its complexity-limited
    variant of Sec. V-C)."""
    return key.removesuffix("_limited")


def cache_dir(ctx: Context) -> str:
    return os.path.join(ctx.out, "weights" if ctx.size == "default" else f"weights-{ctx.size}")


def _loads(ctx: Context, path: str, method: str) -> bool:
    try:
        ctx.load_weights(path, method)
    except (ValueError, OSError):
        return False
    return True


def training_options(ctx: Context, key: str):
    """The training options of curve ``key`` at ``ctx.size``: its method's training module
    (``Method.trainer``: ``training_options`` of the size's profile) with the method's
    ``limited_options`` for a METHOD_limited curve, its ``tiny_options`` at --size quick and its
    ``paper_options`` at paper."""
    from .. import transceiver
    from ..trainer import for_method

    method = transceiver.get(method_of(key))
    options = for_method(method).training_options
    variant = dict(method.limited_options or {}) if key.endswith("_limited") else {}
    if ctx.size == "quick":
        return options(method, "quick", **variant, **method.tiny_options(TINY_STEPS))
    if ctx.size == "paper":
        sizes = PAPER_SINGLE_TARGET if ctx.scenario.scene["max_targets"] == 1 else PAPER_MULTI_TARGET
        return options(method, "paper", **variant, **method.paper_options(**sizes))
    return options(method, "quick", **variant)


def train_weights(ctx: Context, key: str, path: str) -> dict[str, Any]:
    """Train curve ``key`` into ``path`` (see :func:`training_options`; the method's own training
    entry point), resuming from ``<stem>.ckpt.safetensors`` when an interrupted run left one
    that fits."""
    from .. import transceiver
    from ..trainer import for_method

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    quiet = lambda *a, **k: None  # noqa: E731
    method = transceiver.get(method_of(key))
    opts = training_options(ctx, key)
    ckpt = path[: -len(".safetensors")] + ".ckpt.safetensors"
    resume = ckpt if os.path.isfile(ckpt) else None
    if ctx.progress is not False:  # say what runs before a possibly long silence
        print(
            f"{ctx.name}: no weights for {key}: training them ({ctx.size} profile: B = {opts.batch}, "
            f"{opts.iterations} {method.step_unit}) on {ctx.device} into {path}"
            f"{' (resuming from its checkpoint)' if resume else ''}; interrupt and rerun to resume",
            file=sys.stderr,
        )
        if ctx.size == "paper" and ctx.device == "cpu":
            print(
                f"{ctx.name}: warning: paper-size training on the CPU takes days; use --device cuda, or "
                "--weights / --weights-dir with weights trained elsewhere",
                file=sys.stderr,
            )

    def run(resume):
        return for_method(method).train(
            ctx.scenario, opts, path, device=ctx.device, resume=resume, progress=ctx.progress, log=quiet
        )

    try:
        out = run(resume)
    except ValueError:
        if resume is None:
            raise
        resume = None  # a checkpoint of other options or another scenario: start again
        out = run(None)
    return {
        "steps": out["steps"],
        "seconds": out["elapsed_s"],
        "tiny": ctx.size == "quick",
        "profile": ctx.size,
        "batch": opts.batch,
        "iterations": opts.iterations,
        "resumed": resume is not None,
    }


def resolve_weights(ctx: Context, key: str, given: str | None = None) -> dict[str, Any]:
    """{path, source, ...} of curve ``key`` (the order of the module docstring); ``given``: a
    file the user named (--weights), used as it is."""
    from .. import weights as weights_io

    method = method_of(key)
    if given:
        ctx.load_weights(given, method)  # a file that does not fit fails here, saying why
        return {"path": given, "source": "given"}
    name = WEIGHT_FILES[key]
    if ctx.weights_dir:
        p = os.path.join(ctx.weights_dir, name)
        if os.path.isfile(p):
            ctx.load_weights(p, method)
            return {"path": p, "source": "weights-dir"}
    cached = os.path.join(cache_dir(ctx), name)
    if os.path.isfile(cached) and _loads(ctx, cached, method):
        return {"path": cached, "source": "cached"}
    if key == method and ctx.size != "paper":  # the shipped weights, when they are of this method and fit
        shipped = weights_io.default_weights_path()
        if shipped and _loads(ctx, shipped, method):
            return {"path": shipped, "source": "shipped"}
    info = train_weights(ctx, key, cached)
    return {"path": cached, "source": "trained", **info}


def parameter_count(scenario: Scenario, w) -> dict:
    """Learnable parameters of loaded weights ``w`` (their method's count: impairment K real
    spacings, dictionary K x N complex entries, NNBL its networks' real parameters)."""
    from .. import transceiver

    return transceiver.get(w.method).parameter_count(w, scenario)


__all__ = [
    "PAPER_MULTI_TARGET",
    "PAPER_SINGLE_TARGET",
    "TINY_STEPS",
    "WEIGHT_FILES",
    "cache_dir",
    "method_of",
    "parameter_count",
    "resolve_weights",
    "train_weights",
    "training_options",
]
