# Replacement sweeps, BN scale/shift, RMSE (pairs and groups) and reuse plans.


rule sweep:
    input:
        target=f"{RESULTS}/models/{{target}}/model.safetensors",
        source=f"{RESULTS}/models/{{source}}/model.safetensors",
        data=lambda wc: f"{PROCESSED}/{dataset_of_name(wc.target)}",
    output:
        table=f"{RESULTS}/sweeps/{{target}}__{{source}}.csv",
        patients=f"{RESULTS}/sweeps/{{target}}__{{source}}.patients.csv",
    log:
        "logs/sweep/{target}__{source}.log",
    conda:
        "../../environment.yml"
    threads: config["compute"]["threads"]
    resources:
        gpu=ANALYSIS_GPUS,
        mem_mb=8000,
        runtime=120,
    params:
        config=CONFIG_FILE,
        settings=settings("sweep"),
    shell:
        "prrmse sweep --config {params.config} --target-checkpoint {input.target} "
        "--source-checkpoint {input.source} "
        "--data {input.data} --out {output.table} --patients-out {output.patients} "
        "--threads {threads} > {log} 2>&1"


rule sweep_controls:
    input:
        target=f"{RESULTS}/models/{{target}}/model.safetensors",
        data=lambda wc: f"{PROCESSED}/{dataset_of_name(wc.target)}",
        encoder=lambda wc: start_inputs(network_of_name(wc.target)),  # reinit rebuilds the start
    output:
        table=f"{RESULTS}/sweeps/controls/{{target}}.csv",
        patients=f"{RESULTS}/sweeps/controls/{{target}}.patients.csv",
    log:
        "logs/sweep/controls/{target}.log",
    conda:
        "../../environment.yml"
    threads: config["compute"]["threads"]
    resources:
        gpu=ANALYSIS_GPUS,
        mem_mb=8000,
        runtime=240,
    params:
        config=CONFIG_FILE,
        settings=settings("sweep-controls"),
    shell:
        "prrmse sweep-controls --config {params.config} --target-checkpoint {input.target} "
        "--data {input.data} --out {output.table} --patients-out {output.patients} "
        "--threads {threads} > {log} 2>&1"


rule cka:
    input:
        target=f"{RESULTS}/models/{{target}}/model.safetensors",
        source=f"{RESULTS}/models/{{source}}/model.safetensors",
        data=lambda wc: f"{PROCESSED}/{dataset_of_name(wc.target)}",
    output:
        f"{RESULTS}/cka/{{target}}__{{source}}.csv",
    log:
        "logs/cka/{target}__{source}.log",
    conda:
        "../../environment.yml"
    threads: config["compute"]["threads"]
    resources:
        gpu=ANALYSIS_GPUS,
        mem_mb=8000,
        runtime=60,
    params:
        config=CONFIG_FILE,
        settings=settings("cka"),
    shell:
        "prrmse cka --config {params.config} --target-checkpoint {input.target} "
        "--source-checkpoint {input.source} "
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
        "prrmse bnstats --target-checkpoint {input.target} --source-checkpoint {input.source} "
        "--out {output} > {log} 2>&1"


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
        "prrmse rmse --checkpoints {input.target} {input.source} --out {output} > {log} 2>&1"


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
        "prrmse rmse --checkpoints {input} --out {output} > {log} 2>&1"


rule plan:
    input:
        sweep=rules.sweep.output.table,
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
        settings=settings("plan", target_model="{target}"),
    shell:
        "prrmse plan --config {params.config} --sweep {input.sweep} --rmse {input.rmse} "
        "--target-model {wildcards.target} --source-model {wildcards.source} --out {output} "
        "> {log} 2>&1"
