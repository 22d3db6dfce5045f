"""`peft-bench perf`: throughput of peft-bench against the reference protocol, measured side by side.

Each measurement is one module: `evaluation` (reference decoding vs ours vs transformers' batched generate,
the peer path; outputs compared token for token), `training` (reference-style batching vs length grouping,
same steps), `cotrain` (the same mixed trials solo one after another and co-trained on one base), `overhead` (trial start to first optimizer step, cold vs warm weight cache), `control`
(planning a large grid, the store). `suite.run(settings)` runs them (those of `settings.parts`) and returns
the JSON-ready dict; `report` writes JSON + Markdown.
Device choice, TF32 flags and the evaluation batch size from free memory live in benchmark/device.py.
"""

# What one run measures (`perf --part`, repeatable; default all): decoding, the training loops, a trial's start-up,
# planning and the store. Here, not in settings, so that building the command line reads no YAML.
PARTS = ("eval", "train", "cotrain", "overhead", "control")
