"""The start banner says how to call the service and whom it trusts with a user id."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from web.banner import RULE, banner
from web.settings import Settings

URL = "http://127.0.0.1:8064"


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **values)


def test_the_banner_says_which_networks_gateway_mode_trusts(tmp_path: Path) -> None:
    lines = banner(URL, settings(tmp_path, auth_mode="gateway", trusted_networks="10.0.0.0/8"))
    assert lines[0] == lines[-1] == RULE
    trusted = [line for line in lines if "trusted only from" in line]
    assert trusted == [
        "the X-User-Id header: trusted only from 10.0.0.0/8 (MANAGER_TRUSTED_NETWORKS)"
    ]


def test_the_banner_says_which_networks_the_ilps_routes_trust(tmp_path: Path) -> None:
    lines = banner(URL, settings(tmp_path, ilps_compat=True, auth_jwt_secret="s" * 64))
    trusted = [line for line in lines if "trusted only from" in line]
    assert len(trusted) == 1
    assert trusted[0].startswith("the ILPS routes' user_id: trusted only from 127.0.0.0/8, ::1/128")
    assert not (tmp_path / "jwt-secret").exists()  # a configured secret: no development one


def test_the_banner_mentions_no_trust_when_nothing_is_taken_on_trust(tmp_path: Path) -> None:
    lines = banner(URL, settings(tmp_path))
    assert not [line for line in lines if "trusted" in line]
    assert any(line.startswith("  export TOKEN=") for line in lines)


def test_the_curl_example_names_a_file_that_exists_and_this_python(tmp_path: Path) -> None:
    lines = banner(URL, settings(tmp_path))
    [upload] = [line for line in lines if "-F file=@" in line]
    path = Path(shlex.split(upload)[-2].removeprefix("file=@"))
    assert path.is_file()
    assert path.read_bytes()[:4] == b"RIFF"
    commands = [line for line in lines if "run.py token" in line]
    assert commands
    for line in commands:
        assert f"{sys.executable} " in line
        assert " python run.py" not in line


def test_the_banner_prints_no_token_when_told_not_to(tmp_path: Path) -> None:
    lines = banner(URL, settings(tmp_path, print_dev_token=False))
    assert not [line for line in lines if "TOKEN" in line or "sign in" in line]
    (how,) = [line for line in lines if line.startswith("tokens: ")]
    assert how.endswith(" token --user <uuid> (signed with the data dir's secret)")
