"""Landmark models: one family per module, one registry (:func:`create_model`)."""

from faceland.models import (  # noqa: F401  (registers the models)
    hourglass,
    iact,
    imm_cnn,
    regression,
    repformer,
    token_regression,
    unet,
)
from faceland.models.base import (
    SMOKE_KWARGS,
    LandmarkModel,
    create_model,
    list_models,
    register_model,
)

__all__ = ["SMOKE_KWARGS", "LandmarkModel", "create_model", "list_models", "register_model"]
