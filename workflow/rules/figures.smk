# The paper's Figures 3-12 and the tables (first seed of study.seeds).


rule figure:
    input:
        figure_inputs,
    output:
        png=f"{RESULTS}/figures/fig{{number}}.png",
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
    shell:
        "prrmse figure --number {wildcards.number} --inputs {input} "
        "--out {params.out} > {log} 2>&1"


rule table_baseline:
    input:
        expand(f"{RESULTS}/models/{{model}}/metrics.json", model=study_models()),
    output:
        multiext(f"{RESULTS}/tables/baseline", ".csv", ".md", ".tex"),
    log:
        "logs/tables/baseline.log",
    conda:
        "../../environment.yml"
    params:
        out=lambda wc, output: os.path.splitext(output[0])[0],
    shell:
        "prrmse table --kind baseline --inputs {input} --out {params.out} "
        "--caption 'Validation Dice (segmentation) and MSE (auto-encoders) of every model' > {log} 2>&1"


rule table_plans:
    input:
        plan_files(),
    output:
        multiext(f"{RESULTS}/tables/plans", ".csv", ".md", ".tex"),
    log:
        "logs/tables/plans.log",
    conda:
        "../../environment.yml"
    params:
        out=lambda wc, output: os.path.splitext(output[0])[0],
    shell:
        "prrmse table --kind plans --inputs {input} --out {params.out} "
        "--caption 'Reuse plans: non-reusable layers per kind and the share reused' > {log} 2>&1"
