"""Training one model of the study: the epoch loop with resume (`train`), the shared encoder
made once per network (`encoder`), evaluation on a split (`evaluate`) and Dice (`metrics`);
the config's `train` and `encoders.<network>` sections as typed settings (`settings`).

May import `prrmse.models`, `prrmse.data` and `prrmse.core`.
"""
