# The reuse experiment (paper Table 1) and the RMSE of its runs to the ideal model (Figs. 13-14).


rule reuse:
    input:
        source=lambda wc: f"{RESULTS}/models/{wc.src}-s{wc.seed}/model.safetensors",
        plan=reuse_plan_input,
        data=lambda wc: f"{PROCESSED}/{dataset_of_name(wc.run_model)}",
        encoder=lambda wc: start_inputs(network_of_name(wc.run_model)),
    output:
        model=f"{RESULTS}/reuse/{{run_model}}-s{{seed}}-{{mode}}-from-{{src}}/model.safetensors",
        history=f"{RESULTS}/reuse/{{run_model}}-s{{seed}}-{{mode}}-from-{{src}}/history.csv",
        metrics=f"{RESULTS}/reuse/{{run_model}}-s{{seed}}-{{mode}}-from-{{src}}/metrics.json",
        patients=f"{RESULTS}/reuse/{{run_model}}-s{{seed}}-{{mode}}-from-{{src}}/patients.csv",
    log:
        "logs/reuse/{run_model}-s{seed}-{mode}-from-{src}.log",
    conda:
        "../../environment.yml"
    threads: config["compute"]["threads"]
    resources:
        gpu=TRAIN_GPUS,
        mem_mb=8000,
        runtime=240,
    params:
        config=CONFIG_FILE,
        settings=settings("reuse", run="{run_model}-s{seed}-{mode}-from-{src}"),
        run=lambda wc: f"{wc.run_model}-s{wc.seed}-{wc.mode}-from-{wc.src}",
        out=lambda wc, output: os.path.dirname(output.model),
        start=shared_encoder_flag(lambda wc: network_of_name(wc.run_model)),
    shell:
        "prrmse reuse --config {params.config} --run {params.run} "
        "--source-checkpoint {input.source} "
        "--plan {input.plan} --data {input.data} --out {params.out} --threads {threads} "
        "{params.start} > {log} 2>&1"


rule table1:
    input:
        metrics=reuse_metrics,
        patients=reuse_patients,
    output:
        report(
            f"{RESULTS}/tables/table1.csv",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "table1"},
        ),
        multiext(f"{RESULTS}/tables/table1", ".md", ".tex"),
        report(
            f"{RESULTS}/tables/table1-findings.csv",
            caption="../report/table1_findings.rst",
            category="Tables",
            labels={"table": "table1-findings"},
        ),
        f"{RESULTS}/tables/table1-metrics.json",
    log:
        "logs/tables/table1.log",
    conda:
        "../../environment.yml"
    params:
        config=CONFIG_FILE,
        settings=settings("table1"),
        out=lambda wc, output: os.path.splitext(output[0])[0],
    shell:
        "prrmse table1 --config {params.config} --run-metrics {input.metrics} "
        "--out {params.out} > {log} 2>&1"


rule rmse_to_ideal:
    input:
        ideal=lambda wc: reuse_run_checkpoint(ideal_run(wc.seed)),
        runs=lambda wc: [
            reuse_run_checkpoint(r)
            for r in reuse_runs(wc.seed)
            if r != ideal_run(wc.seed)
        ],
    output:
        f"{RESULTS}/reuse/rmse_to_ideal-s{{seed}}.csv",
    log:
        "logs/reuse/rmse_to_ideal-s{seed}.log",
    conda:
        "../../environment.yml"
    shell:
        "prrmse rmse-to-ideal --ideal-checkpoint {input.ideal} --run-checkpoints {input.runs} "
        "--out {output} > {log} 2>&1"


rule figure_reuse:
    input:
        table=f"{SUMMARY}/reuse/rmse_to_ideal.csv",
        floor=floor_input(),
    output:
        png=report(
            f"{RESULTS}/figures/fig{{reuse_figure}}.png",
            caption="../report/figure_reuse.rst",
            category="Figures",
            subcategory="Figs. 13-14: reuse runs against the ideal",
            labels={"figure": "Fig. {reuse_figure}"},
        ),
        pdf=f"{RESULTS}/figures/fig{{reuse_figure}}.pdf",
    log:
        "logs/figures/fig{reuse_figure}.log",
    conda:
        "../../environment.yml"
    params:
        out=lambda wc, output: os.path.splitext(output.png)[0],
        runs=lambda wc: " ".join(figure_runs(wc.reuse_figure)),
        floor=floor_flag,
    shell:
        "prrmse figure --number {wildcards.reuse_figure} --inputs {input.table} {params.floor} "
        "--run-names {params.runs} --out {params.out} > {log} 2>&1"
