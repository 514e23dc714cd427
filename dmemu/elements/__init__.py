"""The connectors, one module each (filled by the connector issues)."""
