"""Adaptive pretraining stages (DAPT / TAPT): continued masked-LM training before fine-tuning.

`config` validates a suite's `adapt:` list; `stage.prepare` builds (or finds cached) the adapted
checkpoint a trial then loads as its base model.
"""
