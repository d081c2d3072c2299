"""Data-parallel training on torch.distributed (the reference codes' MPI layout): process-group set-up from
torchrun's environment, gradient and statistics all-reduce, and the launcher behind `--nproc-per-node`.

May import: workbench.storage.
"""
