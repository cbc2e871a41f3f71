"""The cheapest one-to-one assignment of rows to columns (the Hungarian method), for matching a frame's faces to
the people seen so far (viper.tracks). scipy's linear_sum_assignment does the same; this one keeps scipy, a
140 MB install, out of a prediction-only install, for matrices of a few faces by a few people (tested equal to
scipy's in cost on random and tied matrices)."""

from __future__ import annotations

import numpy as np


def min_cost_assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """(row, column) pairs, rows ascending, matching min(rows, columns) of them at the least total cost: the
    shortest augmenting path form of the Hungarian method with potentials, O(n² m) for n <= m."""
    cost = np.asarray(cost, np.float64)
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    rows, cols = cost.shape
    row_potential, col_potential = np.zeros(rows + 1), np.zeros(cols + 1)
    owner = np.zeros(cols + 1, int)  # owner[j]: the row (1-based) holding column j; column 0 is the free root
    for row in range(1, rows + 1):
        owner[0], column = row, 0
        slack, came_from = np.full(cols + 1, np.inf), np.zeros(cols + 1, int)
        done = np.zeros(cols + 1, bool)
        while owner[column]:  # column 0 is owned by the row being placed
            done[column] = True
            holder = owner[column]
            reduced = cost[holder - 1] - row_potential[holder] - col_potential[1:]
            open_ = ~done[1:]
            better = open_ & (reduced < slack[1:])
            slack[1:][better], came_from[1:][better] = reduced[better], column
            candidates = np.where(open_, slack[1:], np.inf)
            nearest = int(candidates.argmin()) + 1
            step = candidates[nearest - 1]
            row_potential[owner[done]] += step
            col_potential[done] -= step
            slack[1:][open_] -= step
            column = nearest
        while column:  # flip the path back to the root
            previous = came_from[column]
            owner[column] = owner[previous]
            column = previous
    pairs = [(int(owner[j]) - 1, j - 1) for j in range(1, cols + 1) if owner[j]]
    return sorted((col, row) for row, col in pairs) if transposed else sorted(pairs)
