"""prrmse: measure how reusable the parameters of a trained CNN are in another task."""

__version__ = "0.1.0"
