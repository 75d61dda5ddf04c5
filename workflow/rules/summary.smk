# Over seeds: mean and 95 % bootstrap interval of every product a figure draws, the
# seed-to-seed RMSE floor, and the verdicts on the paper's claims.


rule summarise_sweep:
    input:
        tables=seed_products("sweeps"),
        patients=seed_products("sweeps", ".patients.csv"),
    output:
        f"{SUMMARY}/sweeps/{{pair}}.csv",
    log:
        "logs/summary/sweeps/{pair}.log",
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_FILE,
        settings=settings("summarise"),
    shell:
        "prrmse summarise --config {params.config} --kind sweep --inputs {input.tables} "
        "--patients {input.patients} --out {output} > {log} 2>&1"


rule summarise_controls:
    input:
        tables=lambda wc: [
            f"{RESULTS}/sweeps/controls/{wc.model}-s{s}.csv" for s in SEEDS
        ],
        patients=lambda wc: [
            f"{RESULTS}/sweeps/controls/{wc.model}-s{s}.patients.csv" for s in SEEDS
        ],
    output:
        f"{SUMMARY}/sweeps/controls/{{model}}.csv",
    log:
        "logs/summary/controls/{model}.log",
    wildcard_constraints:
        model=STEM_PATTERN,
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_FILE,
        settings=settings("summarise"),
    shell:
        "prrmse summarise --config {params.config} --kind sweep --inputs {input.tables} "
        "--patients {input.patients} --out {output} > {log} 2>&1"


rule summarise_pair:
    input:
        seed_products("{product}"),
    output:
        f"{SUMMARY}/{{product}}/{{pair}}.csv",
    log:
        "logs/summary/{product}/{pair}.log",
    wildcard_constraints:
        product="bnstats|rmse",
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_FILE,
        settings=settings("summarise"),
    shell:
        "prrmse summarise --config {params.config} --kind {wildcards.product} "
        "--inputs {input} --out {output} > {log} 2>&1"


rule summarise_group:
    input:
        lambda wc: [f"{RESULTS}/rmse/groups/{wc.group}-s{s}.csv" for s in SEEDS],
    output:
        f"{SUMMARY}/rmse/groups/{{group}}.csv",
    log:
        "logs/summary/rmse/groups/{group}.log",
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_FILE,
        settings=settings("summarise"),
    shell:
        "prrmse summarise --config {params.config} --kind rmse --inputs {input} "
        "--out {output} > {log} 2>&1"


rule summarise_rmse_to_ideal:
    input:
        [f"{RESULTS}/reuse/rmse_to_ideal-s{s}.csv" for s in REUSE_SEEDS],
    output:
        f"{SUMMARY}/reuse/rmse_to_ideal.csv",
    log:
        "logs/summary/reuse/rmse_to_ideal.log",
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_FILE,
        settings=settings("summarise"),
    shell:
        "prrmse summarise --config {params.config} --kind rmse_to_ideal --inputs {input} "
        "--out {output} > {log} 2>&1"


rule noise_floor:
    input:
        noise_floor_inputs(),
    output:
        f"{RESULTS}/rmse/noise_floor.csv",
    log:
        "logs/rmse/noise_floor.log",
    conda:
        "../../environment.yml"
    shell:
        "prrmse noise-floor --inputs {input} --out {output} > {log} 2>&1"


rule claims:
    input:
        unpack(claims_inputs),
    output:
        md=f"{RESULTS}/claims.md",
        csv=report(
            f"{RESULTS}/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
            labels={"table": "claims"},
        ),
    log:
        "logs/claims.log",
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_FILE,
        settings=settings("claims"),
        args=claims_args,
    shell:
        "prrmse claims --config {params.config} {params.args} "
        "--out {output.md} --csv-out {output.csv} > {log} 2>&1"
