import os

import numpy as np
import pytest

from keras_tl.semantic import WordNet, nearest_neighbours, wordnet_similarity

CLASSES_TSV = "/work/shared/data/tiny-imagenet-32/classes.tsv"
DOG, CAT = "n02084071", "n02121808"  # dog, domestic cat
needs_wordnet = pytest.mark.skipif(
    not WordNet.is_available(),
    reason="WordNet 3.0 is not installed: /usr/share/wordnet/data.noun is absent "
    "(Debian/Ubuntu: apt-get install wordnet-base)",
)

# A miniature data.noun: entity > {animal > carnivore > {dog, cat}, pet > dog}.
SYNSETS = {
    "entity": [],
    "animal": ["entity"],
    "carnivore": ["animal"],
    "pet": ["entity"],
    "dog": ["carnivore", "pet"],
    "cat": ["carnivore"],
}


def write_mini_wordnet(directory):
    header = "  1 This is a miniature of WordNet 3.0's data.noun for tests.  \n"

    def line(name, offsets):
        pointers = " ".join(f"@ {offsets[p]:08d} n 0000" for p in SYNSETS[name])
        return f"{offsets[name]:08d} 03 n 01 {name} 0 {len(SYNSETS[name]):03d} {pointers} | a {name}  \n"

    placeholder = dict.fromkeys(SYNSETS, 0)
    offsets, position = {}, len(header)
    for name in SYNSETS:  # every offset has 8 digits, so line lengths do not depend on them
        offsets[name] = position
        position += len(line(name, placeholder).encode())
    with open(os.path.join(directory, "data.noun"), "w") as f:
        f.write(header + "".join(line(name, offsets) for name in SYNSETS))
    return {name: f"n{offset:08d}" for name, offset in offsets.items()}


def test_parser_and_both_measures_on_a_miniature(tmp_path):
    ids = write_mini_wordnet(str(tmp_path))
    wordnet = WordNet(str(tmp_path))
    assert wordnet.words(ids["dog"]) == ["dog"]
    assert wordnet.is_a(ids["dog"], ids["pet"]) and not wordnet.is_a(ids["cat"], ids["pet"])
    # Longest chain to the root: dog is 4 deep through carnivore, though pet is a short cut.
    assert [wordnet.depth(ids[n]) for n in ("entity", "animal", "pet", "carnivore", "dog")] == [1, 2, 2, 3, 4]
    assert wordnet.ancestors(ids["dog"])[int(ids["entity"][1:])] == 2  # shortest, through pet
    names = ["dog", "cat", "pet"]
    wup = wordnet.similarity([ids[n] for n in names], "wup")
    # dog-cat: carnivore 2·3/(1+1+2·3); dog-pet: pet 2·2/(1+0+2·2); cat-pet: entity 2·1/(3+1+2·1).
    want = np.array([[1, 0.75, 0.8], [0.75, 1, 1 / 3], [0.8, 1 / 3, 1]])
    np.testing.assert_allclose(wup, want)
    path = wordnet.similarity([ids[n] for n in names], "path")
    np.testing.assert_allclose(path, [[1, 1 / 3, 1 / 2], [1 / 3, 1, 1 / 5], [1 / 2, 1 / 5, 1]])


def test_errors(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"Expected WordNet 3.0's data.noun in .*apt-get install wordnet-base"
    ):
        WordNet(str(tmp_path))
    ids = write_mini_wordnet(str(tmp_path))
    wordnet = WordNet(str(tmp_path))
    with pytest.raises(
        ValueError, match=r"Expected an ImageNet/WordNet noun id like 'n02084071'. Received: wnid='dog'"
    ):
        wordnet.words("dog")
    with pytest.raises(ValueError, match=r"Expected distinct wnids. Received repeated wnids"):
        wordnet.similarity([ids["dog"], ids["dog"]])
    with pytest.raises(ValueError, match=r"Expected measure to be one of \('wup', 'path'\)"):
        wordnet.similarity([ids["dog"]], "lch")
    with pytest.raises(ValueError, match=r"Expected a noun synset at offset 00000003"):
        wordnet.words("n00000003")


@needs_wordnet
def test_tiny_imagenet_neighbours_are_sensible():
    rows = [line.split("\t") for line in open(CLASSES_TSV).read().splitlines()[1:]]
    wnids = [row[1] for row in rows]
    assert len(wnids) == 200
    similarity = wordnet_similarity(wnids)
    np.testing.assert_allclose(similarity, similarity.T)
    np.testing.assert_allclose(np.diag(similarity), 1.0)
    assert np.all(similarity > 0) and np.all(similarity <= 1)
    wordnet = WordNet()
    for ancestor, at_least in ((DOG, 5), (CAT, 3)):
        members = [i for i, w in enumerate(wnids) if wordnet.is_a(w, ancestor)]
        assert len(members) >= at_least
        neighbours = nearest_neighbours(similarity, len(members) - 1)
        for i in members:  # e.g. each dog breed's nearest classes are the other dog breeds
            assert set(neighbours[i]) == set(members) - {i}, (rows[i][2], [rows[j][2] for j in neighbours[i]])


@needs_wordnet
def test_real_wordnet_values():
    wordnet = WordNet()
    assert wordnet.words(DOG) == ["dog", "domestic dog", "Canis familiaris"]
    retriever = "n02099029"
    golden, labrador = "n02099601", "n02099712"
    depth = wordnet.depth(retriever)
    assert wordnet.depth(golden) == depth + 1
    similarity = wordnet_similarity([golden, labrador, "n01443537"])  # and a goldfish
    assert similarity[0, 1] == pytest.approx(2 * depth / (2 + 2 * depth))
    assert similarity[0, 2] < similarity[0, 1]
