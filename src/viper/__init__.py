"""viper: emotion recognition from videos of people (ViPER, MuSe 2022), offline from raw files to scores.

Importing viper loads no model and no heavy library; the functions below import what they need when called.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "extract": "viper.jobs.extract:extract",
    "train": "viper.jobs.train:train",
    "evaluate": "viper.jobs.evaluate:evaluate",
    "predict": "viper.jobs.predict:predict",
    "predict_frames": "viper.jobs.predict:predict_frames",
    "trace_table": "viper.trace:trace_table",
    "plot_trace": "viper.trace:plot_trace",
    "inspect": "viper.jobs.inspect:inspect",
    "FeatureStore": "viper.store:FeatureStore",
    "TrainConfig": "viper.jobs.train:TrainConfig",
    "ExtractConfig": "viper.extraction:ExtractConfig",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, _, attribute = _LAZY[name].partition(":")
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'viper' has no attribute {name!r}")


__all__ = list(_LAZY)
