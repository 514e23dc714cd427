"""The remote systems the connectors talk to; imports nothing from protocol/ or elements/."""
