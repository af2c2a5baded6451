"""Offline PyTorch trainer of the model-based learning methods of Sec. IV (issue 4).

torch is imported only inside this subpackage (never by ``gnuradio.isac.model``).
Modules:
  torch_model  differentiable twins of the formulas gradients flow through: steering
               vectors of a learnable spacing array (Example 1 / cumulative) or a learnable
               dictionary, LS beam (7), ISAC beam (5), delay vector, sensing echo (1)
  domp         differentiable OMP (Sec. IV-B, Fig. 4), batched and multi-target
  loss         GOSPA (18) with |P| = |P^| = T (Hungarian assignment) and the MSE variant
  train        data generation, Adam loop, validation, checkpoints (isac-train)
Each twin is pinned to its numpy original by a parity test (tests/test_trainer_*.py).
"""
