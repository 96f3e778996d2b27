"""The commands of ``codesign``, apart from the domain code they drive.

=================  ==============================================================================
``search``         ``python -m codesign.search``: study → :class:`~codesign.search.SearchRun` → results
``report``         ``python -m codesign.report``: Pareto table, plots, per-layer breakdown of a run
``proxy_check``    ``python -m codesign.proxy_check``: proxy vs real accuracy (Kendall τ)
``train_default``  ``python -m codesign.train_default``: retrain the shipped MNIST ViT
=================  ==============================================================================

Each command parses its arguments with :class:`hwmodel.base.cli.OneLineParser` and runs through
:func:`hwmodel.base.cli.run_main` (bad input: one line on stderr, exit 2). Process-wide settings
(offline timm hub, Optuna's logging) are made here, at the entry points, never at import.
"""
