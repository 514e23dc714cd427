"""dmemu: emulated DataMiner-style elements for rehearsing network-management integrations."""

__version__ = "0.1.0"
