"""The field's metrics beside Pearson: CCC for continuous labels, macro-F1 and UAR for the argmax class."""

from __future__ import annotations

import numpy as np
import pytest

from viper.metrics import ccc_scores, class_scores, metrics_table, pearson_scores, top1


def test_ccc_punishes_what_pearson_forgives():
    rng = np.random.default_rng(0)
    truth = rng.random((50, 2))
    for prediction in (truth * 2, truth + 0.5):  # rescaled, shifted: Pearson stays 1
        assert pearson_scores(prediction, truth, ["a", "b"])[1] == pytest.approx(1.0)
        assert ccc_scores(prediction, truth, ["a", "b"])[1] < 0.9
    assert ccc_scores(truth, truth, ["a", "b"])[1] == pytest.approx(1.0)
    by_hand = 2 * np.cov(truth[:, 0] * 2, truth[:, 0], bias=True)[0, 1] / (
        (truth[:, 0] * 2).var() + truth[:, 0].var() + (truth[:, 0].mean() * 2 - truth[:, 0].mean()) ** 2)
    assert ccc_scores(truth * 2, truth, ["a", "b"])[0]["a"] == pytest.approx(by_hand)


def test_macro_f1_and_uar_weigh_every_class_alike():
    truth = np.eye(3)[[0] * 8 + [1, 2]]  # 8 of class 0, one each of 1 and 2
    always_zero = np.eye(3)[[0] * 10]
    scores = class_scores(always_zero, truth)
    assert top1(always_zero, truth)[0] == pytest.approx(0.8)  # accuracy rewards the majority class
    assert scores["uar"] == pytest.approx(1 / 3) and scores["macro_f1"] == pytest.approx((2 * 0.8 / 1.8) / 3)
    assert class_scores(truth, truth) == {"macro_f1": 1.0, "uar": 1.0}


def test_the_table_shows_ccc_and_the_class_scores_and_reads_old_reports():
    truth = np.eye(2)[[0, 1, 0, 1]] + 0.1
    metrics = {"pearson": {"a": 0.5, "b": 0.25}, "mean_pearson": 0.375, "n": 4, "top1_accuracy": 1.0,
               "chance_top1": 0.5}
    old = metrics_table(metrics)
    assert "CCC" not in old and "macro-F1" not in old
    ccc, mean_ccc = ccc_scores(truth, truth, ["a", "b"])
    new = metrics_table(metrics | {"ccc": ccc, "mean_ccc": mean_ccc, **class_scores(truth, truth)})
    assert "CCC" in new and "+1.000" in new and "macro-F1 1.000, UAR 1.000" in new
