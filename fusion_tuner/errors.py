"""Errors a user can cause, each naming what to fix."""

from __future__ import annotations


class ConfigError(ValueError):
    """Every problem found in a configuration, reported together.

    Args:
        problems: one line per problem, each naming the key, its value and the rule.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} configuration problem(s):\n{lines}")


class DataError(RuntimeError):
    """The data cannot be used as configured (missing files, too many bad structures, ...)."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incompatible, or unsafe to load."""


class RunError(RuntimeError):
    """A run directory lacks a file it needs, or is not a fusion_tuner run directory."""


class RunRefused(RunError):
    """A run directory that this process may not train into (another live process owns it, or
    it holds a run of another config); nothing in it was written."""


class Diverged(RuntimeError):
    """Training diverged before any epoch had a finite validation MAE (the learning rate is too
    high for the optimizer, most often); the message names the epoch and what to lower."""


class AnalysisError(ValueError):
    """Inputs that cannot be compared as asked (different test ids, different targets, ...)."""


class PredictError(ValueError):
    """Runs or inputs of a prediction that cannot be used as asked (members with different
    targets, a missing descriptions file the run's texts need, nothing readable, ...)."""


class ExportError(ValueError):
    """A run that cannot be exported as asked (its test ids are not the benchmark's, ...)."""


# Errors a user causes (a wrong key or value, data or a run directory that cannot be used as
# configured): the CLI prints their message and exits 2, without a traceback unless
# HYDRA_FULL_ERROR=1 asks for one.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DataError,
    CheckpointError,
    RunError,
    AnalysisError,
    PredictError,
    ExportError,
)


def full_error() -> bool:
    """True when ``HYDRA_FULL_ERROR=1`` asks for complete tracebacks."""
    import os

    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def mark_reported(exc: BaseException) -> BaseException:
    """Note that ``exc``'s message was already logged (the CLI then does not print it again)."""
    exc.fusion_tuner_reported = True  # type: ignore[attr-defined]
    return exc


def was_reported(exc: BaseException) -> bool:
    return bool(getattr(exc, "fusion_tuner_reported", False))
