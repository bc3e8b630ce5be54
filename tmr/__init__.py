"""TMR workbench: datasets, models with named hook sites, training, probes, RG and bounds."""

from tmr.config import ConfigError, DataConfig, load_data_config
from tmr.io import DataFileError, read, write_dataset

__all__ = ["ConfigError", "DataConfig", "DataFileError", "load_data_config", "read",
           "write_dataset"]
