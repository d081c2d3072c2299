"""Training engines. Each algorithm's loop lives in one module (ppo.py, ppg.py); shared pieces live beside it:
returns.py (GAE, reward normalization), losses.py, rollout.py (the roller and its buffer), ewma.py,
batch_size.py, session.py (resume, checkpoints, graceful stop)."""
