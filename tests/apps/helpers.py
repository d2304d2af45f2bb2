"""What the app tests share: a fast fine-tuning config, and the command line that gives a config."""

import dataclasses

from apps import finetune


def tiny_finetune(source, output_dir, **fields):
    """A `FinetuneConfig` that runs in seconds: 4 digits per class, one epoch, no 10-crop, no export."""
    fast = dict(
        source=str(source),
        per_class=4,
        epochs=1,
        batch_size=4,
        augment="none",
        ten_crop=False,
        export=False,
        verbose=0,
        validation_freq=0,
        output_dir=str(output_dir),
    )
    return finetune.FinetuneConfig(**{**fast, **fields})


def to_argv(config):
    """The flags (program name first) that give `config`: each field that differs from its default."""
    argv = ["prog"]
    defaults = type(config)()
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value == getattr(defaults, field.name):
            continue
        if isinstance(value, bool):
            argv.append(f"--{'' if value else 'no'}{field.name}")
        elif isinstance(value, dict):
            argv.append(f"--{field.name}=" + ",".join(f"{k}={v}" for k, v in value.items()))
        elif isinstance(value, tuple):
            argv.append(f"--{field.name}=" + ",".join(map(str, value)))
        else:
            argv.append(f"--{field.name}={value}")
    return argv
