"""viper.assignment matches scipy's linear_sum_assignment (scipy is in the dev install only): the same least total
cost on random, tied and forbidden-pair matrices of every shape a frame of faces and a list of people give."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from viper.assignment import min_cost_assignment


def test_least_cost_one_to_one_as_scipy_finds_it():
    generator = np.random.default_rng(0)
    for case in range(2000):
        rows, cols = generator.integers(1, 9, 2)
        if case % 3:
            cost = generator.random((rows, cols))
        else:  # ties everywhere: any least-cost assignment will do
            cost = generator.integers(0, 3, (rows, cols)).astype(float)
        if case % 5 == 0:
            cost[generator.random((rows, cols)) < 0.3] = 1e6  # viper.tracks' forbidden pairs
        pairs = min_cost_assignment(cost)
        expected_rows, expected_cols = linear_sum_assignment(cost)
        assert len(pairs) == min(rows, cols)
        assert len({row for row, _ in pairs}) == len({col for _, col in pairs}) == len(pairs)
        assert [row for row, _ in pairs] == sorted(row for row, _ in pairs)
        total = sum(cost[row, col] for row, col in pairs)
        assert abs(total - cost[expected_rows, expected_cols].sum()) < 1e-9, (cost, pairs)
        if case % 3:  # no ties: the one best assignment
            assert pairs == list(zip(expected_rows.tolist(), expected_cols.tolist(), strict=True))


def test_one_face_or_one_person_takes_the_cheapest_pair():
    assert min_cost_assignment(np.array([[0.5, 0.2, 0.9]])) == [(0, 1)]
    assert min_cost_assignment(np.array([[0.5], [0.2], [0.9]])) == [(1, 0)]
