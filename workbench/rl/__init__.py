"""The RL engine: Procgen and the toy environments by name, the IMPALA policy core (channels-last, bf16,
CUDA-graph act, no Triton), the training algorithms (PPO, PPO-EWMA, PPG, PPG-EWMA in `rl.algos`), rebuilding
an acting policy from a checkpoint, and evaluation under the Procgen protocols.

May import: workbench.storage, workbench.distributed.
"""
