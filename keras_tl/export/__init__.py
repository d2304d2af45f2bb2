"""Export for serving: SavedModels in TF Serving's `<base_dir>/<name>/<version>/` layout."""

from keras_tl.export.serving import (
    BYTES_SIGNATURE,
    FLOAT_SIGNATURE,
    export_serving,
    next_version,
    serving_model,
)

__all__ = ["BYTES_SIGNATURE", "FLOAT_SIGNATURE", "export_serving", "next_version", "serving_model"]
