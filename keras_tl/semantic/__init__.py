"""Semantic priors over classes for DSD's Prior-Guided Diffusion: which classes are neighbours.

A prior is a `[N, N]` class similarity matrix — from WordNet (`wordnet_similarity`), from a
teacher's predictions (`teacher_similarity`), or given by the user — and
`nearest_neighbours(similarity, n)` turns it into the neighbour lists
`keras_tl.losses.PriorGuidedDiffusion` takes.
"""

from keras_tl.semantic.neighbours import nearest_neighbours
from keras_tl.semantic.teacher import teacher_similarity
from keras_tl.semantic.wordnet import WordNet, wordnet_similarity
