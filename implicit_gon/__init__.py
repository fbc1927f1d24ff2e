"""Implicit Gradient Origin Networks (Bond-Taylor & Willcocks, ICLR 2021)."""
from .api import GON, fit_gaussian, slerp
from .config import Config, DataConfig, GONConfig, ModelConfig, TrainConfig
from .errors import DataError, GONError
from .media import save_grid, show
from .siren import Siren
from .step import gon_latents, gon_objective
from .train import evaluate, fit, train

__all__ = ["GON", "Config", "DataConfig", "GONConfig", "ModelConfig", "TrainConfig", "DataError", "GONError",
           "Siren", "gon_latents", "gon_objective", "fit_gaussian", "slerp", "fit", "train", "evaluate", "save_grid", "show"]
__version__ = "0.1.0"
