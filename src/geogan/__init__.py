"""geogan: generative adversarial networks for gridded Earth-science data."""

__version__ = "0.1.0"
