"""Storage, the bottom layer: durable writes (atomic files, SQLite connections and write transactions, a
JSONL reader that names file and line), the run store (runs, configs, metrics, checkpoints in SQLite with
WAL) and TensorBoard event files. Everything above keeps its state through these.

May import: nothing else in workbench.
"""
