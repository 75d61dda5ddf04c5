"""Tables and verdicts from the measured files: summaries over seeds (`summary`, with the
bootstrap in `stats`), the seed-to-seed noise floor (`floor`), the paper's numbers
(`paper`), Table 1 (`table1`, `table1_findings`), the other tables (`tables`) and the
claims (`claims`).

May import `prrmse.analysis`, `prrmse.repro` and everything below them; never `figures`
or `cli`.
"""
