"""The torch side of the model: what runs in torch at deployment and what the trainers
differentiate. Nothing here trains (the training loops are gnuradio.isac.trainer).

  schema    NNBL's network sizes and the tensor names and shapes they imply (no torch: a weights
            file is validated without it)
  twins     torch twins of the model formulas (steering vectors, delay vectors, LS beams (5)-(7))
  arrays    the learnable arrays of the array-learning methods (Sec. IV-A) and the other
            differentiable twins the trainer needs, each pinned to its numpy original by a
            parity test
  networks  NNBL's precoder MLP and receiver CNNs (Appendix A), as deployed weights run them

Importing this package imports nothing but itself; torch is loaded by ``twins``, ``arrays`` and
``networks``.
"""
