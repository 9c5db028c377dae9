"""The migration engine: rounds planned, run, checkpointed and resumed through a ledger."""
