"""The paper's conclusions as testable statements, each with a verdict: the statistics and
verdict rule (`core`), the evidence readers (`evidence`), one module per family of claims,
and the list of every claim with its report (`verdicts`)."""
