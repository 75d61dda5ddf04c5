"""Raw data: phantoms, loaders of the real on-disk formats, and preprocessing."""
