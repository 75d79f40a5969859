"""``testing.hub``: the local Hugging Face Hub hands the tiny weights out only for the right token."""

from __future__ import annotations

from pathlib import Path

import httpx

from stereocrafter.testing.hub import HubServer


def test_the_hub_serves_files_for_the_right_token_only(tmp_path: Path) -> None:
    (tmp_path / "org" / "model").mkdir(parents=True)
    (tmp_path / "org" / "model" / "config.json").write_text("{}")
    with HubServer(tmp_path, "secret-token") as hub:
        url = f"{hub.url}/org/model/resolve/main/config.json"
        assert httpx.get(url, headers={"Authorization": "Bearer secret-token"}).status_code == 200
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code in (401, 403)
        assert httpx.get(url).status_code in (401, 403)
