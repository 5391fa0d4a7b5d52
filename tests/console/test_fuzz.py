"""The console API against its own OpenAPI description (schemathesis, on the real `voxkeepctl
serve`): no 5xx, no status, header, content type or body outside the description, and auth
enforced on every route, with each token; and every documented route refuses a request
without one."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.console.conftest import ADMIN, READ
from voxkeep.store import Store

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,ignored_auth"
)


@pytest.mark.parametrize("token", [READ, ADMIN], ids=["read", "admin"])
async def test_the_api_keeps_to_its_openapi_description_under_fuzzing(
    console: tuple[str, Store], tmp_path: Path, token: str
) -> None:
    base, _ = console
    fuzz = await asyncio.create_subprocess_exec(
        SCHEMATHESIS, "run", f"{base}/api/openapi.json", "--checks", CHECKS,
        "-H", f"Authorization: Bearer {token}", "--max-examples", "40", "--seed", "1",
        "--report-dir", str(tmp_path / "report"), "--no-color",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(240):
        out, _ = await fuzz.communicate()
    text = out.decode(errors="replace")
    assert fuzz.returncode == 0, text[-3000:]
    assert "Tested: 8" in text and " passed" in text


async def test_every_documented_route_refuses_a_request_without_a_token(
    console: tuple[str, Store],
) -> None:
    base, _ = console
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/openapi.json") as response:
            paths = (await response.json())["paths"]
        tried = 0
        for path, operations in paths.items():
            url = base + path.replace("{chat_id}", "chat_lisbon")
            for method in operations:
                async with http.request(method.upper(), url, json={"title": "x"}) as response:
                    assert response.status == 401, (method, path)
                    assert (await response.json())["error"] == "unauthorized"
                tried += 1
    assert tried == 8
