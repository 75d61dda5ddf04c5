"""Training one model of the study: the epoch loop with resume (`train`), the shared encoder
made once per network (`encoder`), evaluation on a split (`evaluate`) and Dice (`metrics`).

May import `prrmse.models`, `prrmse.data` and `prrmse.core`.
"""
