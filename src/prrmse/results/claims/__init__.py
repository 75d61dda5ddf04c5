"""The paper's conclusions as testable statements, each with a verdict: the statistics and
verdict rule (`core`), the evidence readers (`evidence`), one module per family of claims,
the list of every claim (`verdicts`) and its report, claims.md and claims.csv (`report`)."""
