"""After a search: its trials, Pareto front and hypervolume, the result table, plots and exports.

=================  ==============================================================================
``trials``         :class:`TrialRow`: the COMPLETE trials of the Optuna study
``front``          :class:`Outcome`: feasible Pareto front, hypervolumes (:func:`analyse`)
``rescore``        real accuracy of the Pareto designs and the baselines
``table``          :class:`ResultRow` and ``trials.csv`` / ``pareto.csv`` / ``hypervolume.csv``
``pareto_table``   the Pareto designs as a text table
``plots``          ``pareto.png``, ``hypervolume.png``, ``pareto.html``
``designs``        ``designs/<trial>/`` (accelerator, quantization, integer model, Verilog)
``summary``        ``summary.json``
=================  ==============================================================================
"""

from codesign.results.designs import export_designs
from codesign.results.front import HV_REFERENCE, Outcome, analyse
from codesign.results.pareto_table import format_pareto
from codesign.results.rescore import rescore
from codesign.results.summary import summary
from codesign.results.table import ResultRow, read_history, read_rows, result_rows, write_tables
from codesign.results.trials import TrialRow, trial_rows

__all__ = [
    "HV_REFERENCE",
    "Outcome",
    "ResultRow",
    "TrialRow",
    "analyse",
    "export_designs",
    "format_pareto",
    "read_history",
    "read_rows",
    "rescore",
    "result_rows",
    "summary",
    "trial_rows",
    "write_tables",
]
