"""Offline PyTorch trainers of Sec. IV (model-based) and Appendix A (NNBL), isac-train.

Nothing at run time imports this subpackage (the NNBL networks that deployed weights run are
gnuradio.isac.nn; the methods of the transceiver layer name their training entry points here).
Modules:
  torch_model  differentiable twins of the formulas gradients flow through: steering vectors of
               the learnable arrays (spacings, element models, dictionary), LS beam (7), sensing
               echo (1) (the twins the networks share are gnuradio.isac.nn.twins)
  domp         differentiable OMP (Sec. IV-B, Fig. 4), batched and multi-target
  loss         GOSPA (18) with |P| = |P^| = T (Hungarian assignment) and the MSE variant
  sampler      FrameSampler: the random training frames of a scenario and its true channel
  harness      Harness: step, loop, checkpoints, CSV log, progress bar, plot, weights (shared)
  train        learning of a method's array on the harness (Trainer, train): impairment,
               dictionary, or any registered array-learning method
  nnbl_train   two-step NNBL training on the harness (NnTrainer, train_nn)
  distributed  data-parallel plumbing under torchrun
Each twin is pinned to its numpy original by a parity test (tests/test_trainer_*.py).
"""
