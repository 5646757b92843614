"""dncli: image restoration and generation from the command line."""

__version__ = "0.1.0"
