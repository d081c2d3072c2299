"""Safety monitors from the ML-safety roadmap (Hendrycks et al. 2021): out-of-distribution detection from a
policy's own outputs, calibration under distribution shift, and the proxy-gaming alarm for RL against a
reward model.

May import: workbench.storage, workbench.rl, workbench.episodes, workbench.calibration, workbench.preferences.
"""
