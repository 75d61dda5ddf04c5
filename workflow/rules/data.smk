# Raw data (phantoms, when enabled), preprocessing into 2D arrays, and a look at them (qc).


rule phantoms:
    output:
        directory(f"{RAW}/{{dataset}}"),
    log:
        "logs/phantoms/{dataset}.log",
    wildcard_constraints:
        dataset="|".join(PHANTOM_DATASETS) or "NONE",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=CONFIG_FILE,
        settings=settings("phantoms", dataset="{dataset}"),
    shell:
        "prrmse phantoms --config {params.config} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


rule prepare:
    input:
        dataset_root,
    output:
        directory(f"{PROCESSED}/{{dataset}}"),
    log:
        "logs/prepare/{dataset}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        config=CONFIG_FILE,
        settings=settings("prepare", dataset="{dataset}"),
    shell:
        "prrmse prepare --config {params.config} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


rule qc:
    input:
        f"{PROCESSED}/{{dataset}}",
    output:
        png=report(
            f"{RESULTS}/qc/{{dataset}}.png",
            caption="../report/qc.rst",
            category="Data",
            subcategory="Prepared datasets",
            labels={"dataset": "{dataset}"},
        ),
        pdf=f"{RESULTS}/qc/{{dataset}}.pdf",
    log:
        "logs/qc/{dataset}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        config=CONFIG_FILE,
        settings=settings("qc"),
        out=lambda wc, output: os.path.splitext(output.png)[0],
    shell:
        "prrmse qc --config {params.config} --dataset {wildcards.dataset} --data {input} "
        "--out {params.out} > {log} 2>&1"
