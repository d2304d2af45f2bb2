"""Command-line apps over keras_tl: `python -m apps.pretrain | finetune | evaluate | export`."""
