"""The generated TypeScript client (clients/typescript) under Node: `npm install`, `tsc
--strict` (no emit, then built to dist/), then driven by tests/clients/typescript/client.mjs
against `vproto serve driver` (TCP, HTTP) and `vproto conform --serve` (TCP, HTTP), which
must pass every case, the backlevel-retry of every negotiating method included."""

from __future__ import annotations

import json
import subprocess

import pytest

from client_harness import (HERE, OPENRPC, TYPESCRIPT_CLIENT, ConformServe, free_port, node_tools, openrpc_methods,
                            token_for, vproto_call)

DRIVER = HERE / "typescript" / "client.mjs"


@pytest.fixture(scope="module")
def built():
    """clients/typescript installed (typescript and @types/node from the npm registry),
    type-checked with --strict and built."""
    node, npm = node_tools()
    for argv in ([npm, "install", "--no-audit", "--no-fund"], [npm, "exec", "--", "tsc", "--noEmit"],
                 [npm, "exec", "--", "tsc"]):
        run = subprocess.run(argv, cwd=TYPESCRIPT_CLIENT, capture_output=True, timeout=600, check=False)
        assert run.returncode == 0, f"{' '.join(argv)}:\n{run.stdout.decode()}\n{run.stderr.decode()}"
    strict = json.loads((TYPESCRIPT_CLIENT / "tsconfig.json").read_text(encoding="utf-8"))
    assert strict["compilerOptions"]["strict"] is True
    return node


def drive(node: str, *args: str) -> dict:
    run = subprocess.run([node, str(DRIVER), *args], capture_output=True, timeout=180, check=False)
    assert run.returncode == 0, run.stderr.decode()
    return json.loads(run.stdout)


@pytest.mark.parametrize("transport", ["tcp", "http"])
def test_list_hardware_under_node(built, transport, request, tmp_path):
    address = request.getfixturevalue("driver_address_" + transport)
    got = drive(built, "list-hardware", address, token_for(address))
    wanted = vproto_call(address, "driver.list_hardware", tmp_path)
    assert got["uuids"] == [item["uuid"] for item in wanted["hardware"]] and got["uuids"]
    assert got["wire"] == wanted


@pytest.mark.parametrize("transport", ["tcp", "http"])
def test_the_typescript_client_passes_conform_serve(built, tmp_path, transport):
    port = free_port()
    address = f"tcp:127.0.0.1:{port}" if transport == "tcp" else f"http://127.0.0.1:{port}"
    mock = ConformServe(address, tmp_path / "report.json")
    got = drive(built, "every-method", address, str(OPENRPC))
    status, report = mock.finish()
    failed = [case for case in report["cases"] if case.get("status") not in ("passed", "pass")]
    assert status == 0 and not failed, json.dumps(failed, indent=1)[:4000]
    called = {m["name"] for m in openrpc_methods() if m.get("examples")}
    assert set(got["outcomes"]) == called
    ids = {case["id"] for case in report["cases"]}
    retried = {method for method, _, _ in got["backlevels"]}
    asked = {case.split("/")[1] for case in ids if case.endswith("/backlevel-retry")}
    assert asked and asked <= retried, (sorted(asked), sorted(retried))
