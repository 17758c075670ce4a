"""Where the shipped firmware sources and Jinja2 templates are, installed or in a checkout."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# In a source checkout (editable install) the folders sit at the top of the repository;
# an installed wheel carries them as the data packages tinygmm.firmware / tinygmm.templates.
_CHECKOUT = Path(__file__).resolve().parents[2]


def _shipped(name: str) -> Path:
    local = _CHECKOUT / name
    if (_CHECKOUT / "pyproject.toml").is_file() and local.is_dir():
        return local
    return Path(str(files(f"tinygmm.{name}")))


def firmware_dir() -> Path:
    """The firmware/ folder (C sources)."""
    return _shipped("firmware")


def templates_dir() -> Path:
    """The templates/ folder (Jinja2 templates)."""
    return _shipped("templates")
