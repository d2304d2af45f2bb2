"""Resume-safe shuffling: each epoch's order and augmentation keys are a function of (seed, epoch)."""

import tensorflow as tf


def shuffled_per_epoch(dataset, buffer_size, seed):
    """`dataset` shuffled by a seed of `(seed, epoch)`, not by how often it was iterated; each
    element gains a last component, its augmentation key `(seed, epoch, position)`.

    `shuffle(reshuffle_each_iteration=True)` draws each pass's order from this process's
    iterator count, so a run resumed at epoch k would replay epoch 0's order; here pass k
    has the order of `(seed, k)` wherever it runs. Blocks of `buffer_size` consecutive
    examples are each permuted uniformly (stateless); with `buffer_size` ≥ the number of
    examples (the default up to 10,000) that is one uniform permutation per epoch.
    """
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")
    cardinality = dataset.cardinality()

    def one_pass(_):
        index = epoch.assign_add(1) - 1

        def permute(block_index, block):
            block_seed = tf.stack([tf.constant(seed, tf.int64), index * 1_000_003 + block_index])
            order = tf.random.experimental.stateless_shuffle(
                tf.range(tf.shape(block[-1])[0]), seed=block_seed
            )
            return tf.data.Dataset.from_tensor_slices(
                tf.nest.map_structure(lambda t: tf.gather(t, order), block)
            )

        # The augmentation's key of each example: (seed, epoch, position), another stream than the order's.
        base = tf.constant(seed, tf.int64) * 2 + 1
        return (
            dataset.batch(buffer_size)
            .enumerate()
            .flat_map(permute)
            .enumerate()
            .map(lambda position, element: (*element, tf.stack([base, index * 1_000_000_007 + position])))
        )

    shuffled = tf.data.Dataset.from_tensors(0).flat_map(one_pass)
    if cardinality >= 0:
        shuffled = shuffled.apply(tf.data.experimental.assert_cardinality(cardinality))
    return shuffled, epoch
