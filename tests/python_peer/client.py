#!/usr/bin/env python3
"""An independent vproto client in Python: a service host asking a network host for a port.

Written only from the published description (schema/vproto.openrpc.json) and the JSON-RPC 2.0
specification. It speaks newline-delimited JSON-RPC over a Unix socket or TCP:

    client.py --connect unix:PATH|tcp:HOST:PORT [--on-unsupported backlevel|give-up]

It starts discovery on a driver and lists its hardware, then calls network.create_port with the
HostInfo of this host's os-vif plugins, every object written at the newest version the
description lists. Each params object is checked against the method's params schema before it
is sent, and each result against the result schema (or a declared error's data schema).

The network host may answer UnsupportedVersion (seed 000's negotiation): its data names the
object it cannot read and the newest version of it that it supports. With
`--on-unsupported backlevel` (the default) the client rewrites every such object in its params
at that version, with the rule of `description.backlevel` (fields the object's history
introduced later are dropped), and retries once. The other modes are the mistakes of clients
that do not negotiate properly, for the suite to catch: `give-up` reports the error and stops;
`retry-as-is` sends the same request again; `relabel-only` rewrites the object's version but
keeps the fields that version does not have.

Exit status: 0 when every call got a valid result or a declared error other than
UnsupportedVersion; 1 otherwise; 2 for bad usage or an unreachable server.
"""

import argparse
import itertools
import json
import socket
import sys

from description import CHANGES, DATA, NAME, NAMESPACE, VERSION, Description
import jsonrpc

#: This host's os-vif plugins: (plugin, [(VIF class, min, max, [(port profile, min, max)])]).
PLUGINS = [
    ("ovs", [("VIFOpenVSwitch", "1.0", "1.0", [("VIFPortProfileOpenVSwitch", "1.0", "1.4")]),
             ("VIFBridge", "1.0", "1.0", [("VIFPortProfileOpenVSwitch", "1.0", "1.4")])]),
    ("linux_bridge", [("VIFBridge", "1.0", "1.0", [])]),
]


class Failure(Exception):
    """Something that makes this run fail, with what and why."""


def newest(description, name, data):
    """The versioned object `name` with `data`, at the newest version the description lists."""
    return {NAME: name, NAMESPACE: "os_vif", VERSION: description.newest(name), DATA: data, CHANGES: sorted(data)}


def host_info(description):
    """This host's HostInfo (newest versions throughout)."""
    plugins = []
    for plugin, vifs in PLUGINS:
        vif_info = []
        for vif_class, low, high, profiles in vifs:
            vif_info.append(newest(description, "HostVIFInfo", {
                "vif_object_name": vif_class, "min_version": low, "max_version": high,
                "supported_port_profiles": [newest(description, "HostPortProfileInfo", {
                    "profile_object_name": name, "min_version": p_low, "max_version": p_high})
                    for name, p_low, p_high in profiles]}))
        plugins.append(newest(description, "HostPluginInfo", {"plugin_name": plugin, "vif_info": vif_info}))
    return newest(description, "HostInfo", {"plugin_info": plugins})


class Connection:
    """One newline-delimited JSON-RPC connection."""

    def __init__(self, address):
        try:
            if address.startswith("unix:"):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(address[len("unix:"):])
            elif address.startswith("tcp:"):
                host, _, port = address[len("tcp:"):].rpartition(":")
                self.sock = socket.create_connection((host.strip("[]"), int(port)))
            else:
                raise Failure(f"--connect {address}: expected unix:PATH or tcp:HOST:PORT")
        except (OSError, ValueError) as error:
            raise ConnectionError(f"cannot connect to {address}: {error}") from error
        self.sock.settimeout(30)
        self.reader = self.sock.makefile("rb")
        self.ids = itertools.count(1)

    def call(self, method, params):
        """`(result, error)` of one request; `error` a dict when the server answered one."""
        request_id = next(self.ids)
        self.sock.sendall((jsonrpc.request(method, params, request_id) + "\n").encode())
        line = self.reader.readline()
        if not line:
            raise Failure(f"{method}: the server closed the connection without answering")
        try:
            answer = json.loads(line)
        except ValueError as error:
            raise Failure(f"{method}: the answer is not JSON ({error}): {line[:200]!r}") from error
        if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0" or answer.get("id") != request_id:
            raise Failure(f"{method}: not a JSON-RPC 2.0 response to id {request_id}: {line[:200]!r}")
        if "error" in answer:
            return None, answer["error"]
        return answer.get("result"), None

    def close(self):
        """Closes the connection."""
        self.reader.close()
        self.sock.close()


def checked_call(description, connection, method_name, params, on_unsupported):
    """Calls one method, validating both ways, negotiating UnsupportedVersion as configured."""
    method = description.methods[method_name]
    for attempt in (1, 2):
        problems = Description.violations(method.params_validator, params)
        if problems:
            raise Failure(f"{method_name}: refusing to send invalid params: {problems}")
        result, error = connection.call(method_name, params)
        if error is None:
            problems = Description.violations(method.result_validator, result)
            if problems:
                raise Failure(f"{method_name}: the result does not match the description: {problems}")
            return result
        declared = {e["code"]: name for name, e in method.errors.items()}
        name = declared.get(error.get("code"))
        if name != "UnsupportedVersion":
            where = f"declared error {name}" if name else "error"
            print(f"{method_name}: {where} {error.get('code')} {error.get('message')}: {error.get('data')}",
                  file=sys.stderr)
            if name is None:
                raise Failure(f"{method_name}: an undeclared error: {error}")
            return None
        data = error.get("data") or {}
        if on_unsupported == "give-up" or attempt == 2:
            raise Failure(f"{method_name}: the server cannot read {data.get('object')} (it supports up to "
                          f"{data.get('max_version')}); not retrying")
        try:
            if on_unsupported == "backlevel":
                params = description.backlevel_all(params, data["object"], data["max_version"])
            elif on_unsupported == "relabel-only":
                params = description.relabel_all(params, data["object"], data["max_version"])
        except (KeyError, TypeError, ValueError) as problem:
            raise Failure(f"{method_name}: cannot backlevel as asked ({data}): {problem}") from problem
        print(f"{method_name}: the server reads {data['object']} up to {data['max_version']}; "
              f"retrying ({on_unsupported})", file=sys.stderr)
    raise AssertionError("unreachable")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", required=True, help="unix:PATH or tcp:HOST:PORT")
    parser.add_argument("--on-unsupported", choices=["backlevel", "give-up", "retry-as-is", "relabel-only"],
                        default="backlevel")
    parser.add_argument("--network-id", default="7a1c9e52-4b3d-4f8e-a6c2-1d9b8e7f6a50")
    parser.add_argument("--port-id", default="3f9e1b2c-8d4a-4e6f-9b1c-2d3e4f5a6b7c")
    parser.add_argument("--openrpc", default=None, help="the published OpenRPC document")
    args = parser.parse_args()
    description = Description(args.openrpc) if args.openrpc else Description()
    try:
        connection = Connection(args.connect)
    except (ConnectionError, Failure) as error:
        print(f"client.py: {error}", file=sys.stderr)
        return 2
    try:
        checked_call(description, connection, "driver.start_discovery", {}, args.on_unsupported)
        checked_call(description, connection, "driver.list_hardware", {}, args.on_unsupported)
        instance = newest(description, "InstanceInfo", {
            "uuid": "d2b4c6e8-0a1b-4c3d-8e5f-6a7b8c9d0e1f", "name": "instance-0000002a"})
        vif = checked_call(description, connection, "network.create_port", {
            "host_info": host_info(description), "instance": instance,
            "network_id": args.network_id, "port_id": args.port_id}, args.on_unsupported)
        if vif is not None:
            print(json.dumps(vif))
        return 0
    except (Failure, OSError) as error:
        print(f"client.py: {error}", file=sys.stderr)
        return 1
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
