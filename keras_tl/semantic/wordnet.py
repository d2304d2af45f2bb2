"""WordNet 3.0's noun hierarchy, read straight from `data.noun` (no nltk, no download)."""

import functools
import os
import re

import numpy as np

DEFAULT_PATH = "/usr/share/wordnet"  # where Debian's `wordnet-base` installs WordNet 3.0
MEASURES = ("wup", "path")
_WNID = re.compile(r"^n(\d{8})$")
_HYPERNYMS = ("@", "@i")  # hypernym and instance hypernym


class WordNet:
    """The noun synsets and their hypernyms, looked up by ImageNet id (`'n'` + 8-digit offset).

    `data.noun` is built for random access: a synset's line starts at the byte offset that
    is its id, so only the classes asked for and their ancestors are ever read.

    Args:
        path: the WordNet 3.0 directory holding `data.noun` (Debian: `apt-get install
            wordnet-base` gives `/usr/share/wordnet`). ImageNet's ids are WordNet 3.0 offsets.
    """

    def __init__(self, path=DEFAULT_PATH):
        self.path = path
        self.data_file = os.path.join(path, "data.noun")
        if not os.path.isfile(self.data_file):
            raise FileNotFoundError(
                f"Expected WordNet 3.0's data.noun in {path!r} (Debian/Ubuntu: apt-get install "
                f"wordnet-base). Received: path={path!r}"
            )
        self._synsets = {}
        self._distances = {}
        self._depths = {}

    @staticmethod
    def is_available(path=DEFAULT_PATH):
        return os.path.isfile(os.path.join(path, "data.noun"))

    @staticmethod
    def offset(wnid):
        match = _WNID.match(str(wnid))
        if not match:
            raise ValueError(
                f"Expected an ImageNet/WordNet noun id like 'n02084071'. Received: wnid={wnid!r}"
            )
        return int(match.group(1))

    def _synset(self, offset):
        """`(words, hypernym offsets)` of the synset at byte `offset` of data.noun."""
        if offset not in self._synsets:
            with open(self.data_file, "rb") as f:
                f.seek(offset)
                line = f.readline().decode("utf-8", errors="replace")
            fields = line.split(" | ")[0].split()
            if (
                not fields
                or not fields[0].isdigit()
                or int(fields[0]) != offset
                or fields[2] not in ("n", "s")
            ):
                raise ValueError(f"Expected a noun synset at offset {offset:08d} of {self.data_file}.")
            word_count = int(fields[3], 16)
            words = [w.replace("_", " ") for w in fields[4 : 4 + 2 * word_count : 2]]
            position = 4 + 2 * word_count
            pointers = fields[position + 1 : position + 1 + 4 * int(fields[position])]
            parents = [
                int(pointers[i + 1])
                for i in range(0, len(pointers), 4)
                if pointers[i] in _HYPERNYMS and pointers[i + 2] == "n"
            ]
            self._synsets[offset] = (words, parents)
        return self._synsets[offset]

    def words(self, wnid):
        """The synset's lemmas, e.g. `['dog', 'domestic dog', 'Canis familiaris']`."""
        return list(self._synset(self.offset(wnid))[0])

    def ancestors(self, wnid):
        """`{offset: shortest number of hypernym steps from wnid}`, wnid itself at 0."""
        return dict(self._ancestors(self.offset(wnid)))

    def _ancestors(self, offset):
        if offset not in self._distances:
            distances, frontier = {offset: 0}, [offset]
            while frontier:  # breadth first: the first visit is the shortest distance
                next_frontier = []
                for node in frontier:
                    for parent in self._synset(node)[1]:
                        if parent not in distances:
                            distances[parent] = distances[node] + 1
                            next_frontier.append(parent)
                frontier = next_frontier
            self._distances[offset] = distances
        return self._distances[offset]

    def is_a(self, wnid, ancestor):
        """Whether `ancestor` is `wnid` or one of its hypernyms (transitively)."""
        return self.offset(ancestor) in self._ancestors(self.offset(wnid))

    def depth(self, wnid):
        """1 + the longest chain of hypernyms up to the root (`entity` has depth 1).

        The longest, as nltk's `max_depth`: a synset with a short cut to the root (dog is
        also a "domestic animal") must not look shallower than its own ancestors (carnivore).
        """
        return self._depth(self.offset(wnid))

    def _depth(self, offset):
        if offset not in self._depths:
            parents = self._synset(offset)[1]
            self._depths[offset] = 1 + max((self._depth(p) for p in parents), default=0)
        return self._depths[offset]

    def similarity(self, wnids, measure="wup"):
        """`[n, n]` similarity of the classes `wnids` in the hypernym hierarchy (1 on the diagonal).

        With d(a, c) the shortest hypernym distance from a up to its ancestor c and D(c) the
        depth of c (`depth`), over the common ancestors c of a and b:

        - `"wup"` (Wu & Palmer): max_c 2·D(c) / (d(a, c) + d(b, c) + 2·D(c));
        - `"path"`: 1 / (1 + min_c (d(a, c) + d(b, c))).

        d is the shortest distance and D the longest, as in nltk's Wu-Palmer; taking the
        best common ancestor (rather than nltk's deepest one) can give slightly different
        values where a synset has several hypernyms.
        """
        if measure not in MEASURES:
            raise ValueError(f"Expected measure to be one of {MEASURES}. Received: measure={measure!r}")
        offsets = [self.offset(w) for w in wnids]
        if len(set(offsets)) != len(offsets):
            repeated = sorted({w for w in wnids if list(wnids).count(w) > 1})
            raise ValueError(f"Expected distinct wnids. Received repeated wnids: {repeated}")
        columns = sorted({node for o in offsets for node in self._ancestors(o)})
        index = {node: i for i, node in enumerate(columns)}
        distance = np.full((len(offsets), len(columns)), np.inf)
        for row, o in enumerate(offsets):
            for node, d in self._ancestors(o).items():
                distance[row, index[node]] = d
        depth = np.array([self._depth(node) for node in columns], dtype="float64")
        result = np.empty((len(offsets), len(offsets)))
        for row in range(len(offsets)):
            shared = np.isfinite(distance[row])  # row's ancestors; others' may be inf there
            total = distance[row, shared][None, :] + distance[:, shared]  # [n, ancestors of row]
            if measure == "wup":
                scores = 2 * depth[shared] / (total + 2 * depth[shared])  # inf total -> 0
                result[row] = np.max(scores, axis=1)
            else:
                result[row] = 1 / (1 + np.min(total, axis=1))
        return result


@functools.lru_cache(maxsize=4)
def _wordnet(path):
    return WordNet(path)


def wordnet_similarity(wnids, measure="wup", path=DEFAULT_PATH):
    """`[n, n]` WordNet similarity of ImageNet-id classes; see `WordNet.similarity`.

    The semantic prior (a) of DSD Sec. 3.2 ("an artificially defined WordNet synonym
    structure tree"): feed it to `keras_tl.semantic.nearest_neighbours`.

    Example:
    >>> similarity = keras_tl.semantic.wordnet_similarity(["n02085620", "n02099601", "n02123045"])
    >>> keras_tl.semantic.nearest_neighbours(similarity, 1)  # Chihuahua <-> golden retriever
    [[1], [0], [0]]
    """
    return _wordnet(path).similarity(wnids, measure)
