"""A monitored network element for the Telenet examples: its signal loss, which users set."""

from dmemu.protocol import Number, Parameter, Protocol


class Router(Protocol):
    """Signal Loss in %; the examples' alarm template judges it (Minor 10 %, Major 30 %, Critical 60 %)."""

    name = "Example Router"
    parameters = (Parameter(10, "Signal Loss", Number(0, 100, "%"), write=True, default=0),)
