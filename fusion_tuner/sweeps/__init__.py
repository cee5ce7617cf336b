"""Sweeps: what a multirun plans (``plan``), the summary and its decision rule (``summary``),
how the summary is written (``report``), and the Hydra callback that ties them to a multirun
(``callback``)."""
