"""The layer-replacement sweep: the engine and its naive reference (`engine`), the rows it
writes (`rows`), prefix reuse of the unchanged layers' activations (`prefix`) and BN folding
(`bnfold`)."""
