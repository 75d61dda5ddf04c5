"""What every phase shares and nothing in the study depends on: errors, file I/O and
hashing, provenance stamps, the config and its schema, the model-name grammar, the
parameter kinds, provenance-stamped tables, progress lines and numeric precision.

Imports nothing else of prrmse (bar the version); light enough for the Snakefile.
"""
