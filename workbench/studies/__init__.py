"""Families of runs: studies (sweeps over config axes, run locally or on Ray), the Procgen benchmark grid as a
study, compute accounting, and the scaling-law fits over them.

May import: every workbench package except workbench.cli.
"""
