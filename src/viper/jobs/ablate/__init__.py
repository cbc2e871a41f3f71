"""`viper ablate`: the paper's modality ablation (Table 3, and Table 2's visual settings) on any feature store.

Settings of the `paper` grid: image alone; image + one of text (caption) / audio / FAU; the three triples with
image; all four (those whose modalities the store lacks are left out). Every further face_image key of the store
(e.g. a `-nocrop-` one, Table 2) is one more image-alone setting. `--grid all` takes every non-empty subset of the
store's modalities. Baselines in the same table: `ridge` (per-clip averages of every modality over its valid
frames, sklearn RidgeCV on train; deterministic, so one run) and `gru` (a small bidirectional GRU over the
standardised frame tokens, masked mean pooling; the MuSe baseline family).

Each setting is trained with `viper.jobs.train.train` for k seeds and scored with `viper.jobs.evaluate.evaluate` on dev
and on test where test is labelled. Runs live in OUT/runs/<setting>/seed<k>/; one whose metrics exist for every
scored split is skipped, an interrupted one resumes (train is resumable), so the same command continues a sweep.
OUT gets runs.csv, runs.json, report.md, report.html (self-contained), bars.png, heatmap.png.
"""

from .grid import AblationResult, Fusion, Setting, grid_settings, labelled_splits
from .runs import run_ablation

__all__ = ["AblationResult", "Fusion", "Setting", "grid_settings", "labelled_splits", "run_ablation"]
