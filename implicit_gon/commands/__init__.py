"""The command line's parts, assembled into the app by cli.py: options that set config fields and document
themselves (fields.py), the fit commands built from the signal adapters' declarations (fit.py), and a verb's way
from its options to the run's adapter and back to files and lines (dispatch.py). Only cli.py imports them; they
import typer, the engine's modules and, through implicit_gon.plugins, the adapters."""
