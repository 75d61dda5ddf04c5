# The paper's Figures 3-12 (summaries over every seed of study.seeds), the figures beyond
# the paper (activation CKA, control sweeps) and the tables.


rule figure:
    input:
        table=figure_inputs,
        floor=figure_floor,
    output:
        png=report(
            f"{RESULTS}/figures/fig{{number}}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Figs. 3-12: target against source",
            labels={"figure": "Fig. {number}"},
        ),
        pdf=f"{RESULTS}/figures/fig{{number}}.pdf",
    log:
        "logs/figures/fig{number}.log",
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        out=lambda wc, output: os.path.splitext(output[0])[0],
        floor=floor_flag,
    shell:
        "prrmse figure --number {wildcards.number} --inputs {input.table} {params.floor} "
        "--out {params.out} > {log} 2>&1"


rule figure_cka:
    input:
        lambda wc: f"{RESULTS}/cka/{comparison_seed_pair(wc.network)}.csv",
    output:
        png=report(
            f"{RESULTS}/figures/cka-{{network}}.png",
            caption="../report/figure_cka.rst",
            category="Figures",
            subcategory="Beyond the paper",
            labels={"figure": "CKA {network}"},
        ),
        pdf=f"{RESULTS}/figures/cka-{{network}}.pdf",
    log:
        "logs/figures/cka-{network}.log",
    conda:
        "../../environment.yml"
    params:
        out=lambda wc, output: os.path.splitext(output.png)[0],
    shell:
        "prrmse figure-cka --summary {input} --out {params.out} > {log} 2>&1"


rule figure_controls:
    input:
        source=lambda wc: f"{SUMMARY}/sweeps/{comparison_pair(wc.network)}.csv",
        controls=lambda wc: f"{SUMMARY}/sweeps/controls/{config['analysis']['comparisons'][wc.network]['target']}.csv",
    output:
        png=report(
            f"{RESULTS}/figures/controls-{{network}}.png",
            caption="../report/figure_controls.rst",
            category="Figures",
            subcategory="Beyond the paper",
            labels={"figure": "controls {network}"},
        ),
        pdf=f"{RESULTS}/figures/controls-{{network}}.pdf",
    log:
        "logs/figures/controls-{network}.log",
    conda:
        "../../environment.yml"
    params:
        out=lambda wc, output: os.path.splitext(output.png)[0],
    shell:
        "prrmse figure-controls --sweep-summary {input.source} "
        "--controls-summary {input.controls} "
        "--out {params.out} > {log} 2>&1"


rule table_baseline:
    input:
        metrics=expand(f"{RESULTS}/models/{{model}}/metrics.json", model=study_models()),
        # read beside each metrics.json: conv_bias picks the paper's baseline row
        models=expand(
            f"{RESULTS}/models/{{model}}/model.safetensors", model=study_models()
        ),
    output:
        report(
            f"{RESULTS}/tables/baseline.csv",
            caption="../report/table_baseline.rst",
            category="Tables",
            labels={"table": "baseline"},
        ),
        multiext(f"{RESULTS}/tables/baseline", ".md", ".tex"),
    log:
        "logs/tables/baseline.log",
    conda:
        "../../environment.yml"
    params:
        out=lambda wc, output: os.path.splitext(output[0])[0],
    shell:
        "prrmse table --kind baseline --inputs {input.metrics} --out {params.out} "
        "--caption 'Validation Dice (segmentation) and MSE (auto-encoders) of every model' > {log} 2>&1"


rule table_plans:
    input:
        [p for seed in REUSE_SEEDS for p in plan_files(seed)],
    output:
        report(
            f"{RESULTS}/tables/plans.csv",
            caption="../report/table_plans.rst",
            category="Tables",
            labels={"table": "plans"},
        ),
        multiext(f"{RESULTS}/tables/plans", ".md", ".tex"),
    log:
        "logs/tables/plans.log",
    conda:
        "../../environment.yml"
    params:
        out=lambda wc, output: os.path.splitext(output[0])[0],
    shell:
        "prrmse table --kind plans --inputs {input} --out {params.out} "
        "--caption 'Reuse plans: non-reusable layers per kind and the share reused' > {log} 2>&1"
