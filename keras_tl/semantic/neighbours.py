"""Semantic neighbours N(c) of each class from a class similarity matrix."""

import numpy as np


def nearest_neighbours(similarity, num_neighbours):
    """For each class c, the `num_neighbours` other classes with the largest `similarity[c]`.

    Ties go to the lower class id, so the result is deterministic. `similarity` is any
    `[N, N]` matrix: WordNet's, a teacher's, or the user's own (DSD's priors (a)-(c)).

    Returns:
        a list of N lists of ints, most similar first: `PriorGuidedDiffusion(neighbours=...)`.
    """
    matrix = np.asarray(similarity, dtype="float64")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not np.all(np.isfinite(matrix)):
        raise ValueError(f"Expected a finite square [N, N] similarity matrix. Received shape {matrix.shape}")
    size = matrix.shape[0]
    if (
        isinstance(num_neighbours, bool)
        or not isinstance(num_neighbours, (int, np.integer))
        or not (0 <= num_neighbours < size)
    ):
        raise ValueError(
            f"Expected 0 <= num_neighbours < N = {size}. Received: num_neighbours={num_neighbours!r}"
        )
    order = np.argsort(-matrix, axis=1, kind="stable")
    return [[int(c) for c in row if c != index][:num_neighbours] for index, row in enumerate(order)]
