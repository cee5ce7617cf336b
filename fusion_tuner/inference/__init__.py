"""Using trained runs: prediction on new crystals (:func:`predict`), exactly as each run was
trained; inputs are read by :mod:`fusion_tuner.inference.inputs`."""

from fusion_tuner.inference.predictor import PredictionTable, predict

__all__ = ["PredictionTable", "predict"]
