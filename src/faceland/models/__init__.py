"""Landmark models: one family per module, one registry (:func:`create_model`)."""

from faceland.models import regression  # noqa: F401  (registers the models)
from faceland.models.base import (
    SMOKE_KWARGS,
    LandmarkModel,
    create_model,
    list_models,
    register_model,
)

__all__ = ["SMOKE_KWARGS", "LandmarkModel", "create_model", "list_models", "register_model"]
