"""The generated Python client (clients/python, `import vproto_client`) against real servers.

- against `vproto serve driver` over a Unix socket, TCP and HTTP: typed objects equal to what
  the Rust client (`vproto call`) gets;
- installed with pip into a fresh venv, a five-line script lists the driver's hardware;
- params are refused before anything is sent when they do not fit the schema;
- against `vproto conform --serve` (Unix socket and HTTP): every method of the description is
  called with its first example, each twice, and the mock passes every case, the
  backlevel-retry of every negotiating method included; the second calls get the declared
  errors, raised as the generated exception classes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import venv
from pathlib import Path

import pytest

import vproto_client
from vproto_client import errors, objects
from vproto_client.services import METHODS

from client_harness import PYTHON_CLIENT, ConformServe, free_port, openrpc_methods, token_for, vproto_call


def discover(client) -> None:
    """Starts discovery on the driver and waits for it to be DONE (the driver lists no
    hardware before)."""
    status = client.driver.start_discovery()
    deadline = time.monotonic() + 30
    while status.status != "DONE":
        assert status.status == "IN-PROGRESS" and time.monotonic() < deadline, status
        time.sleep(0.05)
        status = client.driver.discovery_status()
    assert isinstance(status, objects.DiscoveryStatus)


def test_list_hardware_returns_typed_objects(driver_address, tmp_path):
    with vproto_client.connect(driver_address, token=token_for(driver_address)) as client:
        discover(client)
        listed = client.driver.list_hardware()
    assert isinstance(listed, objects.HardwareList)
    assert listed.hardware and all(isinstance(item, objects.Hardware) for item in listed.hardware)
    # The same answer the Rust client reads, field for field.
    assert vproto_client.dumps(listed.to_json()) == vproto_client.dumps(vproto_call(driver_address, "driver.list_hardware", tmp_path))
    assert listed.hardware[0].uuid == vproto_call(driver_address, "driver.list_hardware", tmp_path)["hardware"][0]["uuid"]


def test_pip_install_into_a_fresh_venv_and_a_five_line_script(tmp_path, driver_address):
    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(fresh)
    python = fresh / "bin" / "python"
    # The client's dependencies (jsonschema, referencing) come from the test venv: no index is
    # reached. The package itself is built and installed by pip from clients/python.
    site = next(Path(p) for p in sys.path if p.endswith("site-packages") and "jsonschema" in os.listdir(p))
    fresh_site = next((fresh / "lib").glob("python3*/site-packages"))
    (fresh_site / "test-deps.pth").write_text(str(site) + "\n", encoding="utf-8")
    # Built from a copy: pip's build leaves build/ and *.egg-info beside the sources.
    source = tmp_path / "vproto-client"
    shutil.copytree(PYTHON_CLIENT, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation",
                              str(source)], capture_output=True, timeout=300, check=False)
    assert install.returncode == 0, install.stderr.decode()
    script = tmp_path / "list.py"
    script.write_text(
        "import sys, vproto_client\n"
        "client = vproto_client.connect(sys.argv[1], token=sys.argv[2] if len(sys.argv) > 2 else None)\n"
        "for hardware in client.driver.list_hardware().hardware:\n"
        "    print(hardware.uuid, type(hardware).__name__, vproto_client.__file__)\n"
        "client.close()\n", encoding="utf-8")
    with vproto_client.connect(driver_address, token=token_for(driver_address)) as client:
        discover(client)
    token = [token_for(driver_address)] if token_for(driver_address) else []
    run = subprocess.run([str(python), str(script), driver_address, *token], capture_output=True, timeout=60, check=False,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr.decode()
    lines = run.stdout.decode().splitlines()
    expected = [item["uuid"] for item in vproto_call(driver_address, "driver.list_hardware", tmp_path)["hardware"]]
    assert [line.split()[0] for line in lines] == expected
    assert all(line.split()[1] == "Hardware" for line in lines)
    assert all(str(fresh) in line.split()[2] for line in lines), "imported from the fresh venv"


def test_invalid_params_are_refused_before_sending(tmp_path):
    # A listener that records what it receives: nothing may arrive.
    path = tmp_path / "recorder.sock"
    received = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def record():
        connection, _ = listener.accept()
        with connection:
            while chunk := connection.recv(65536):
                received.append(chunk)

    thread = threading.Thread(target=record, daemon=True)
    thread.start()
    client = vproto_client.connect(f"unix:{path}")
    instance = objects.InstanceInfo(uuid="d2b4c6e8-0a1b-4c3d-8e5f-6a7b8c9d0e1f", name="instance-1")
    host = objects.HostInfo(plugin_info=[])
    with pytest.raises(vproto_client.InvalidParams) as raised:
        client.network.create_port(host_info=host, instance=instance, network_id="not-a-uuid",
                                   port_id="3f9e1b2c-8d4a-4e6f-9b1c-2d3e4f5a6b7c")
    client.close()
    thread.join(timeout=10)
    listener.close()
    assert raised.value.violations and raised.value.violations[0]["pointer"] == "/network_id", raised.value
    assert received == [], "nothing is sent for invalid params"


def typed_params(method: dict) -> dict:
    """The first example's params of an OpenRPC method, read into the client's typed values and
    keyed by the generated proxy method's argument names."""
    info = METHODS[method["name"]]
    params = {}
    for param in method["examples"][0]["params"]:
        argument, type_view = info.params[param["name"]]
        params[argument] = vproto_client.REGISTRY.decode(type_view, param["value"])
    return params


def call_every_method(client) -> dict:
    """Calls every method of the description with its first example's params, twice: the
    first answer must be a typed result, the second a declared error (raised as its generated
    class) or a result. Returns {method: (result type, second outcome)}."""
    outcomes = {}
    for method in openrpc_methods():
        if not method.get("examples"):
            continue
        service, name = method["name"].split(".")
        proxy = getattr(client, service)
        params = typed_params(method)
        first = getattr(proxy, name)(**params)
        declared = [e for e in method.get("errors", []) if e.get("x-name") != "UnsupportedVersion"]
        try:
            second = type(getattr(proxy, name)(**params)).__name__
        except vproto_client.DeclaredError as error:
            assert any(error.CODE == e["code"] for e in declared), f"{method['name']}: {error!r}"
            assert type(error) is getattr(errors, type(error).__name__)
            second = type(error).__name__
        outcomes[method["name"]] = (type(first).__name__, second)
    return outcomes


@pytest.mark.parametrize("transport", ["unix", "http"])
def test_the_client_passes_conform_serve(tmp_path, transport):
    address = f"unix:{tmp_path / 'mock.sock'}" if transport == "unix" else f"http://127.0.0.1:{free_port()}"
    mock = ConformServe(address, tmp_path / "report.json")
    client = vproto_client.connect(address)
    try:
        outcomes = call_every_method(client)
        backlevels = list(client.session.backlevels)
    finally:
        client.close()
    status, report = mock.finish()
    failed = [case for case in report_cases(report) if case.get("status") not in ("passed", "pass")]
    assert status == 0 and not failed, json.dumps(failed, indent=1)[:4000]
    ids = {case["id"] for case in report_cases(report)}
    negotiating = [m["name"] for m in openrpc_methods()
                   if any(e.get("x-name") == "UnsupportedVersion" for e in m.get("errors", [])) and m.get("examples")]
    retried = {method for method, _, _ in backlevels}
    for method in negotiating:
        if f"serve/{method}/backlevel-retry" in ids:
            assert method in retried, f"{method}: the mock asked for a backlevel the client did not make"
    assert any(case.endswith("/backlevel-retry") for case in ids), sorted(ids)
    assert outcomes, "every method was called"


def report_cases(report: dict) -> list:
    """The cases of a JSON report."""
    return report["cases"]
