"""Class similarity from a trained teacher's predictions (DSD's semantic prior (b))."""

from keras_tl.relationship import class_means, to_probabilities


def teacher_similarity(teacher_outputs, labels, from_logits=True):
    """`[N, N]`: row c = the teacher's mean softmax over the images of class c.

    S[c, d] = mean_{x: y(x) = c} p_teacher(d | x): how much the teacher confuses class c with
    class d, so c's semantic neighbours are the other classes of row c with the largest
    values (`keras_tl.semantic.nearest_neighbours`). Not symmetric, on purpose: N(c) is
    about what images of c look like. The teacher predicts the same N classes as the labels
    (e.g. a larger model trained on the upstream data set, DSD Sec. 3.2's "teacher").

    Args:
        teacher_outputs: `[n, N]` teacher logits (or probabilities with `from_logits=False`).
        labels: `[n]` integer classes in [0, N); every class needs at least one image.
        from_logits: whether `teacher_outputs` are logits.

    Example:
    >>> similarity = keras_tl.semantic.teacher_similarity(teacher.predict(x_up), y_up)
    >>> neighbours = keras_tl.semantic.nearest_neighbours(similarity, 5)
    """
    probabilities = to_probabilities(teacher_outputs, from_logits, "teacher_outputs")
    return class_means(probabilities, labels, probabilities.shape[1], what="image")
