"""Where the shipped firmware sources and Jinja2 templates are, installed or in a checkout, and the one
Jinja2 environment every template is rendered with."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING
from importlib.resources import files
from pathlib import Path

if TYPE_CHECKING:
    import jinja2

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


@functools.lru_cache(maxsize=1)
def _jinja() -> "jinja2.Environment":
    import jinja2

    # Templates hold data and layout only; StrictUndefined turns a missing value into an error.
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def render_template(template: str, /, **context: object) -> str:
    """templates/NAME rendered with ``context``."""
    return _jinja().get_template(template).render(**context)
