# Every model of the study: <network>-<task>-<dataset>[-n<N>]-s<seed> (config study.models x study.seeds),
# and the shared encoder start of each network whose config says start.encoder: shared.


rule shared_encoder:
    output:
        f"{RESULTS}/encoders/{{encoder_network}}.safetensors",
    log:
        "logs/encoders/{encoder_network}.log",
    wildcard_constraints:
        encoder_network="|".join(shared_encoder_networks()) or "NONE",
    conda:
        "../../environment.yml"
    threads: config["compute"]["threads"]
    resources:
        gpu=TRAIN_GPUS,
        mem_mb=8000,
        runtime=240,
    params:
        config=CONFIG_FILE,
        settings=settings("encoder", network="{encoder_network}"),
    shell:
        "prrmse encoder --config {params.config} --network {wildcards.encoder_network} "
        "--out {output} --threads {threads} > {log} 2>&1"


rule train:
    input:
        data=model_dataset,
        encoder=lambda wc: start_inputs(model_network(wc)),
        same_run=same_run_input,
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
        gpu=TRAIN_GPUS,
        mem_mb=8000,
        runtime=240,
    params:
        config=CONFIG_FILE,
        settings=settings("train", model="{model}"),
        start=shared_encoder_flag(model_network),
        same_run=same_run_flag,
    shell:
        "prrmse train --config {params.config} --model {wildcards.model} --data {input.data} "
        "--out $(dirname {output.model}) --threads {threads} {params.start} {params.same_run} "
        "> {log} 2>&1"
