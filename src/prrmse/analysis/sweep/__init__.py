"""The layer-replacement sweep: the replacement and its naive reference (`replacement`), the
controls' replacement sources (`controls`), the jobs that run it and write its CSVs
(`engine`), the rows it writes (`rows`), prefix reuse of the unchanged layers' activations
(`prefix`) and BN folding (`bnfold`)."""
