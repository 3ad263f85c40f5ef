"""Scale-out on Ray: many sandboxed experiments at once, over many GPUs and machines.

Only the sandbox step travels (apply, train, evaluate: one `SandboxBackend.run`); the
guards, review, keep decision, ledger, audit trail and research branch stay with the
driver, the one writer. `bundle` packs what a worker needs (the frozen files, the base
tree, the prepared data and its seal), `worker` is the Ray task that unpacks it, checks
the seal and runs the sandbox there, and `pool` keeps experiments in flight.

Ray is an optional extra (`pip install 'labwarden[ray]'`): nothing here imports it until
a pool is opened.
"""
