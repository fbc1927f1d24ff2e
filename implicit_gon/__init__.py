"""Implicit Gradient Origin Networks (Bond-Taylor & Willcocks, ICLR 2021)."""
from .api import GON, fit_gaussian, slerp
from .config import Config, DataConfig, GONConfig, ModelConfig, TrainConfig
from .errors import DataError, GONError
from .siren import Siren
from .step import gon_latents, gon_objective

__all__ = ["GON", "Config", "DataConfig", "GONConfig", "ModelConfig", "TrainConfig", "DataError", "GONError",
           "Siren", "gon_latents", "gon_objective", "fit_gaussian", "slerp"]
__version__ = "0.1.0"
