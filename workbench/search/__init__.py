"""Search in two-player games: Hex as a batched environment, MCTS (PUCT and UCT), Policy Gradient Search
(Anthony et al. 2019), expert iteration, and tournaments with Elo ratings.

May import: workbench.storage, workbench.rl.
"""
