"""Each default is defined once, and the README's configuration table says the same."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from speech.cpus import cpu_count
from speech.settings import SpeechSettings
from supervisor.config import SupervisorConfig
from web.settings import Settings

README = Path(__file__).parent.parent / "README.md"
SETTINGS: tuple[type[BaseSettings], ...] = (Settings, SpeechSettings)
#: A cell that is one literal, maybe with a note after it: "`26214400` (25 MiB)".
LITERAL = re.compile(r"^`([^`]*)`(?: \(.*\))?$")


def documented_defaults() -> dict[str, str]:
    """Variable -> its Default cell, from the README's configuration table."""
    table: dict[str, str] = {}
    for line in README.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`MANAGER_"):
            continue
        names = [name.strip("`") for name in cells[0].split(" / ")]
        if len(names) == 1:
            table[names[0]] = cells[4]
            continue
        # "`MANAGER_X_HOST` / `_PORT` / `_PROTOCOL`": one default per name, split the same way.
        stem = names[0].rsplit("_", 1)[0]
        defaults = cells[4].split(" / ")
        assert len(defaults) == len(names), line
        for name, default in zip(names, defaults, strict=True):
            table[name if name.startswith("MANAGER_") else stem + name] = default
    return table


def declared_fields() -> dict[str, FieldInfo]:
    """Variable -> its field, over every settings class the service reads."""
    return {
        f"MANAGER_{name.upper()}": info
        for settings in SETTINGS
        for name, info in settings.model_fields.items()
    }


def matches(info: FieldInfo, cell: str) -> bool:
    """Whether a README Default cell states the field's default."""
    if info.default_factory is cpu_count:
        return cell == "CPU count"
    literal = LITERAL.match(cell)
    default: Any = info.default
    if default is None or default == []:  # nothing, or words on what is chosen instead
        return literal is None
    if literal is None:
        return False
    value = literal.group(1)
    match default:
        case bool():
            return value == str(default)
        case int() | float():
            return float(value) == default
        case Path():
            return Path(value) == default
        case _:
            return bool(value == default)


def test_every_setting_is_in_the_readme_table_and_nothing_else() -> None:
    assert sorted(documented_defaults()) == sorted(declared_fields())


@pytest.mark.parametrize("variable", sorted(declared_fields()))
def test_the_readme_states_each_settings_default(variable: str) -> None:
    cell = documented_defaults().get(variable)
    assert cell is not None, f"{variable} is not in the README's configuration table"
    info = declared_fields()[variable]
    assert matches(info, cell), f"README says {cell!r}, the settings {info.default!r}"


def test_the_service_settings_default_to_the_supervisor_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in os.environ:
        if name.startswith("MANAGER_"):
            monkeypatch.delenv(name)
    assert Settings(_env_file=None).supervisor_config() == SupervisorConfig()


def test_the_cpu_count_sizes_the_capacity_and_the_engine_workers() -> None:
    assert SupervisorConfig().capacity == cpu_count() == (os.cpu_count() or 1)
    assert Settings.model_fields["capacity"].default_factory is cpu_count
    assert SpeechSettings.model_fields["engine_workers"].default_factory is cpu_count
