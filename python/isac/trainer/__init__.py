"""Offline PyTorch trainers of Sec. IV (model-based) and Appendix A (NNBL), isac-train.

Nothing at run time imports this subpackage: the NNBL networks deployed weights run and the
learnable arrays are gnuradio.isac.nn; a method of the transceiver layer names the module that
trains it (``Method.trainer``), and the apps that train (isac-train, the experiments) find it
with :func:`for_method`. Modules:
  domp         differentiable OMP (Sec. IV-B, Fig. 4), batched and multi-target
  loss         GOSPA (18) with |P| = |P^| = T (Hungarian assignment) and the MSE variant
  sampler      FrameSampler: the random training frames of a scenario and its true channel
  harness      Harness: step, loop, checkpoints, CSV log, progress bar, plot, weights (shared)
  train        learning of a method's array on the harness (Trainer, train): impairment,
               dictionary, or any registered array-learning method
  nnbl_train   two-step NNBL training on the harness (NnTrainer, train_nn)
  distributed  data-parallel plumbing under torchrun
A training module (``Method.trainer``) has ``training_options(method, profile, **flags)`` (the
options of a run: the profile "paper" | "quick" with isac-train's flags on top) and
``train(scenario, options, out, **kwargs)`` (kwargs: device, resume, progress, log, dist;
returns the run's summary).
"""

from __future__ import annotations

import importlib
from types import ModuleType


def for_method(method) -> ModuleType:
    """The training module of ``method`` (a registered transceiver.Method): its ``trainer``.
    ValueError when the method does not train."""
    if not getattr(method, "trainer", None):
        raise ValueError(f"method {method.name!r} does not train")
    return importlib.import_module(method.trainer)


__all__ = ["for_method"]
