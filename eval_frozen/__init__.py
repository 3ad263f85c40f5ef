"""Frozen: data prep, tokenizer, the public dataloader API, the evaluator and the seal.

Imports nothing of labwarden's other packages. Mounted read-only and verified by hash.

Public entry points (everything else is private to prepare and the evaluator):
- `dataloader`: what the trainer imports (`load_profile`, `load_tokenizer`, `train_batches`);
  train split only.
- `prepare`: `labwarden prepare --profile P`: data, tokenizer, seal into
  `<workspace>/.labwarden/data/<P>/`.
- `seal`: `labwarden seal [--verify]`; `verify(data_dir, groups, code_root)`.
- `evaluate`: `python -m eval_frozen.evaluate` / `labwarden evaluate`; `evaluate_file`,
  `evaluate_module` (in-process, same scoring code).

Parts: `profiles` (the frozen constants), `sources/` (builtin, local, climbmix), `shards`
(parquet document folders), `tokenizer` (rustbpe-trained BPE run by tiktoken), `packing`
(BOS-aligned rows, shared by training and evaluation), `model_io` (safe loading of the
exported program: no pickles, registered and deterministic operators only, no state),
`probes` (output contract, and causality checked on scored rows at secret cuts drawn at
evaluation time, at the scoring batch sizes, in nats).
"""
