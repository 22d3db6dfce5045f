"""Adaptive pretraining stages (DAPT / TAPT): continued masked-LM training before fine-tuning.

The stage settings are parsed by the registry (`registry/stages.py`, held in the TrialSpec);
`stage.prepare` builds (or finds cached) the adapted checkpoint a trial then loads as its base model.
"""
