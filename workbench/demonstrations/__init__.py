"""Learning from demonstrations: demonstration sets of recorded episodes (human or agent), behavioural
cloning, RL and best-of-n on top of a cloned policy, and the MineRL competition's tracks as protocols.

May import: workbench.storage, workbench.rl, workbench.episodes, workbench.preferences.
"""
