"""NNBL at run time (Appendix A): the networks that an ``isac-train --method nn`` weights file
holds, as the blocks, isac-sim and isac-eval run them. Nothing here trains.

  schema    the network sizes and the tensor names and shapes they imply (no torch: a weights
            file is validated without it)
  twins     the torch twins of the model formulas the networks use (shared with the trainer)
  networks  the precoder MLP and the receiver CNNs (torch)

Importing this package imports nothing but itself; torch is loaded by ``twins`` and ``networks``.
"""
