"""Sweeps: what a multirun plans (``plan``), its rounds of seeds (``rounds``, ``sequential``,
``assess``), the summary's numbers and verdict (``summary``) and its files (``summary_files``),
phases that chain (``chain``), the report over a whole plan (``plan_report``, the entry, with
``plan_load``, ``plan_model``, ``plan_criteria``, ``plan_render``, ``figures``, ``context``),
and the Hydra callback that ties them to a multirun (``callback``)."""
