"""The networks and their parameters: the paper's UNet and PSPNet and any smp architecture,
built by name (`registry`); the layer index (`layers`); how each part of a network starts
(`start`, `start_model`, `import_weights`); the two training tasks' heads and losses
(`tasks`); checkpoints (`checkpoint`).

May import `prrmse.core` only. Kept free of imports so that a light module of this
package does not pull in torch.
"""
