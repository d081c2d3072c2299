"""Recorded episodes: whole episodes with the agent's frames, actions, action distributions, values and the
512x512 render, stored and indexed (`rollouts`), exported as MP4/GIF (`export`), and cut into clips for
comparisons (`clips`).

May import: workbench.storage, workbench.rl.
"""
