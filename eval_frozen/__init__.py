"""Frozen: data prep, tokenizer, the public dataloader API, the evaluator and the seal.

Imports nothing of labwarden's other packages. Mounted read-only and verified by hash.
"""
