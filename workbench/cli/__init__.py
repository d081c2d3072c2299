"""The `workbench` command line, the top layer: each subcommand parses its arguments and calls the packages
below (`python -m workbench.cli` and the `workbench` script run `workbench.cli.main:main`).

May import: every workbench package.
"""
