# Replacement sweeps, BN scale/shift, RMSE (pairs and groups) and reuse plans.


rule sweep:
    input:
        target=f"{RESULTS}/models/{{target}}/model.safetensors",
        source=f"{RESULTS}/models/{{source}}/model.safetensors",
        data=lambda wc: f"{PROCESSED}/{wc.target.split('-')[2]}",
    output:
        f"{RESULTS}/sweeps/{{target}}__{{source}}.csv",
    log:
        "logs/sweep/{target}__{source}.log",
    conda:
        "../../environment.yml"
    threads: config["compute"]["threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    params:
        config=CONFIG_FILE,
    shell:
        "prrmse sweep --config {params.config} --target {input.target} --source {input.source} "
        "--data {input.data} --out {output} --threads {threads} > {log} 2>&1"


rule bnstats:
    input:
        target=f"{RESULTS}/models/{{target}}/model.safetensors",
        source=f"{RESULTS}/models/{{source}}/model.safetensors",
    output:
        f"{RESULTS}/bnstats/{{target}}__{{source}}.csv",
    log:
        "logs/bnstats/{target}__{source}.log",
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "prrmse bnstats --target {input.target} --source {input.source} --out {output} > {log} 2>&1"


rule rmse_pair:
    input:
        target=f"{RESULTS}/models/{{target}}/model.safetensors",
        source=f"{RESULTS}/models/{{source}}/model.safetensors",
    output:
        f"{RESULTS}/rmse/{{target}}__{{source}}.csv",
    log:
        "logs/rmse/{target}__{source}.log",
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "prrmse rmse --models {input.target} {input.source} --out {output} > {log} 2>&1"


rule rmse_group:
    input:
        group_checkpoints,
    output:
        f"{RESULTS}/rmse/groups/{{group}}-s{{seed}}.csv",
    log:
        "logs/rmse/groups/{group}-s{seed}.log",
    conda:
        "../../environment.yml"
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        "prrmse rmse --models {input} --out {output} > {log} 2>&1"


rule plan:
    input:
        sweep=f"{RESULTS}/sweeps/{{target}}__{{source}}.csv",
        rmse=f"{RESULTS}/rmse/{{target}}__{{source}}.csv",
    output:
        f"{RESULTS}/plans/{{target}}__{{source}}.json",
    log:
        "logs/plan/{target}__{source}.log",
    conda:
        "../../environment.yml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        config=CONFIG_FILE,
    shell:
        "prrmse plan --config {params.config} --sweep {input.sweep} --rmse {input.rmse} "
        "--target {wildcards.target} --source {wildcards.source} --out {output} > {log} 2>&1"
