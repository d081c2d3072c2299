"""Learning from human preferences: the label store (campaigns, assignment with overlap, import and export),
agreement statistics, reward models and their training, synthetic labelers, best-of-n with the unbiased
estimator, and RL against a reward model with a KL penalty (`rlhf`).

May import: workbench.storage, workbench.rl, workbench.episodes, workbench.calibration.
"""
