"""Raw data: phantoms, loaders of the real on-disk formats (ACDC, RVSC, T1 mapping), the
paper's split protocol, and preprocessing into the processed arrays every later phase reads.

May import `prrmse.core` only.
"""
