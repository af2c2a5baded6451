"""The paper's system model in numpy (Secs. II-III): pure functions on arrays,
batched over frames where it matters, complex64 signals. No GNU Radio, no torch.

Modules, one job each:
  array        steering vectors a(theta), impairment models a_pert(theta; d), dictionaries
  grids        angle / delay grids and the resolutions of eq. (16)
  ofdm         QPSK mapping and ML detection (15), delay vector rho(tau)
  scene        random and fixed target scenes, true positions (2)
  channels     sensing echo (1) and MISO communication channel (4)
  reciprocal   reciprocal filtering (3)
  beamforming  LS beampattern synthesis (6)-(7) and the ISAC beam (5)
  omp          baseline OMP, Algorithm 1, with joint LS gains (13) and residual (14)
  metrics      p_md (20), p_fa (21), GOSPA (17), SER (22), RMSE, threshold calibration
"""
