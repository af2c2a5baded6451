"""Offline PyTorch trainers of Sec. IV (model-based) and Appendix A (NNBL), isac-train.

torch is imported only inside this subpackage (never by ``gnuradio.isac.model``).
Modules:
  torch_model  differentiable twins of the formulas gradients flow through: steering
               vectors of a learnable spacing array (Example 1 / cumulative) or a learnable
               dictionary, LS beam (7), ISAC beam (5), delay vector, sensing echo (1)
  domp         differentiable OMP (Sec. IV-B, Fig. 4), batched and multi-target
  loss         GOSPA (18) with |P| = |P^| = T (Hungarian assignment) and the MSE variant
  sampler      FrameSampler: the random training frames of a scenario and its true channel
  harness      Harness: step, loop, checkpoints, CSV log, progress bar, plot, weights (shared)
  train        impairment / dictionary learning on the harness (Trainer, train)
  nnbl         the NNBL networks (sizes and tensor schema: gnuradio.isac.nn_schema)
  nnbl_train   two-step NNBL training on the harness (NnTrainer, train_nn)
  distributed  data-parallel plumbing under torchrun
Each twin is pinned to its numpy original by a parity test (tests/test_trainer_*.py).
"""
