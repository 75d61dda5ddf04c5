# Every model of the study: <network>-<task>-<dataset>[-n<N>]-s<seed> (config study.models x study.seeds).


rule train:
    input:
        data=model_dataset,
    output:
        model=f"{RESULTS}/models/{{model}}/model.safetensors",
        history=f"{RESULTS}/models/{{model}}/history.csv",
        metrics=f"{RESULTS}/models/{{model}}/metrics.json",
        patients=f"{RESULTS}/models/{{model}}/patients.csv",
    log:
        "logs/train/{model}.log",
    conda:
        "../../environment.yml"
    threads: config["compute"]["threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        config=CONFIG_FILE,
    shell:
        "prrmse train --config {params.config} --model {wildcards.model} --data {input.data} "
        "--out $(dirname {output.model}) --threads {threads} > {log} 2>&1"
