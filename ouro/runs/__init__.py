"""Papermill runs of the notebooks: `ouro run` (one machine), `ouro pod-run` (every pod host),
and the parameters-cell checks both apply before a kernel starts."""
