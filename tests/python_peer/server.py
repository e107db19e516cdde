#!/usr/bin/env python3
"""An independent vproto server in Python: the driver and network services.

Written only from the published description (schema/vproto.openrpc.json, with the JSON Schemas it
holds) and the JSON-RPC 2.0 specification, to show that `vproto conform` judges any language.
It speaks newline-delimited JSON-RPC (one JSON text per line) on stdin/stdout, on a Unix
socket (created mode 0600), or on TCP with TLS (Python's ssl module; the certificate chain and its
key given, TLS 1.2 at least; plain TCP is not served). Each connection is served by its own
thread; the address (`unix:PATH`, `tcp:HOST:PORT` with the port chosen when 0 was given) is
printed on stdout once listening; SIGTERM or SIGINT stop it (and remove the socket):

    server.py --driver-config DRIVER.json --network-config NETWORK.json
              [--listen stdio|unix:PATH|tcp:HOST:PORT --tls-cert CERT.pem --tls-key KEY.pem]
              [--openrpc FILE]

Methods: rpc.discover (the description itself), driver.start_discovery, driver.discovery_status,
driver.list_hardware and network.create_port. Every request's params are validated against the
method's params schema (-32602 listing each violation as {pointer, message}); a versioned object
newer than this server knows is answered first with the declared UnsupportedVersion error naming it
and the newest version the description lists; anything unexpected is logged on stderr and answered
-32603 without details.

Configs:
- driver: {"hardware": [Hardware...], "discovery": {"duration_ms": 500, "outcome": "DONE"}}; a
  discovery run takes duration_ms and ends with outcome (DONE: all hardware found; FAILED: half).
  Other members are ignored.
- network: {"networks": [{"id": UUID, "label": ..., "bridge": "br-int", "mtu": 1450,
  "subnets": [{"cidr": ..., "gateway": ..., "dns": [...]}]}]}.

create_port, as the method's description says: for the network, try the VIF classes this host
produces (VIFOpenVSwitch, VIFBridge, VIFVHostUser, in that order) against the HostInfo's plugins
(in their order); a plugin fits a class when it lists it with a [min_version, max_version] range
holding a version the description knows, and the VIF is written at the highest such version
(backlevelled with description.backlevel). VIFOpenVSwitch and VIFVHostUser carry a
VIFPortProfileOpenVSwitch: a plugin listing that profile in supported_port_profiles gets it at the
highest version of the listed range; one listing only other profiles does not fit; one listing
none (or a HostVIFInfo 1.0, which cannot list any) gets no port profile. Nothing fits: the
declared NoCompatibleVif. The same port_id again: the same port, or PortInUse for another
instance or network.
"""

import argparse
import ipaddress
import json
import os
import signal
import socketserver
import ssl
import sys
import threading
import time
import traceback

from description import CHANGES, DATA, NAME, NAMESPACE, VERSION, Description, parse_version
import jsonrpc
from jsonrpc import RpcError

#: The VIF classes this host produces, most preferred first, with the port profile each carries.
PRODUCIBLE = [("VIFOpenVSwitch", "VIFPortProfileOpenVSwitch"), ("VIFBridge", None),
              ("VIFVHostUser", "VIFPortProfileOpenVSwitch")]


def envelope(description, name, data, version=None):
    """The versioned object `name` with `data`, at `version` (default: the newest)."""
    full = {NAME: name, NAMESPACE: "os_vif", VERSION: description.newest(name), DATA: data,
            CHANGES: sorted(data)}
    return full if version is None else description.backlevel(full, version)


class ConfigError(Exception):
    """A config file that cannot be used, with where and why."""


def load_json(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from error


class Driver:
    """A simulated Cyborg driver."""

    def __init__(self, description, path):
        config = load_json(path)
        if not isinstance(config, dict) or not isinstance(config.get("hardware"), list):
            raise ConfigError(f"{path}: expected an object with a `hardware` array")
        hardware = description.validator("Hardware")
        for index, item in enumerate(config["hardware"]):
            problems = Description.violations(hardware, item)
            if problems:
                raise ConfigError(f"{path}: /hardware/{index}{problems[0]['pointer']}: {problems[0]['message']}")
        discovery = config.get("discovery", {})
        self.hardware = config["hardware"]
        self.duration = discovery.get("duration_ms", 0) / 1000.0
        self.outcome = discovery.get("outcome", "DONE")
        if self.outcome not in ("DONE", "FAILED") or not isinstance(discovery.get("duration_ms", 0), int):
            raise ConfigError(f"{path}: /discovery: duration_ms is an integer, outcome DONE or FAILED")
        self.started = None
        self.lock = threading.Lock()

    def _state(self):
        if self.started is None:
            return None
        if time.monotonic() - self.started < self.duration:
            return "IN-PROGRESS"
        return self.outcome

    def start_discovery(self, _params):
        with self.lock:
            state = self._state()
            if state != "IN-PROGRESS":
                self.started = time.monotonic()
                state = self._state() or "IN-PROGRESS"
            return {"status": state}

    def discovery_status(self, _params):
        """The latest run's state, starting none (DONE before any run, as vproto's driver)."""
        with self.lock:
            return {"status": self._state() or "DONE"}

    def list_hardware(self, _params):
        with self.lock:
            state = self._state()
            if state is None:
                found = 0
            elif state == "IN-PROGRESS":
                found = int(len(self.hardware) * (time.monotonic() - self.started) / max(self.duration, 1e-9))
            elif state == "DONE":
                found = len(self.hardware)
            else:
                found = len(self.hardware) // 2
            return {"hardware": self.hardware[:min(found, len(self.hardware))]}


class Network:
    """An os-vif network host."""

    def __init__(self, description, path):
        self.description = description
        config = load_json(path)
        if not isinstance(config, dict) or not isinstance(config.get("networks"), list):
            raise ConfigError(f"{path}: expected an object with a `networks` array")
        self.networks = {}
        for index, network in enumerate(config["networks"]):
            where = f"{path}: /networks/{index}"
            if not isinstance(network, dict) or not isinstance(network.get("id"), str):
                raise ConfigError(f"{where}: a network needs an `id`")
            try:
                subnets = [(ipaddress.ip_network(s["cidr"], strict=False), s.get("gateway"), s.get("dns", []))
                           for s in network.get("subnets", [])]
            except (KeyError, TypeError, ValueError) as error:
                raise ConfigError(f"{where}/subnets: {error}") from error
            self.networks[network["id"].lower()] = (network, subnets)
        self.ports = {}
        self.lock = threading.Lock()

    def _highest_within(self, name, low, high):
        try:
            low, high = parse_version(low), parse_version(high)
        except ValueError:
            return None
        within = [v for v in self.description.versions(name) if low <= parse_version(v) <= high]
        return within[-1] if within else None

    def _negotiate(self, host_info):
        for vif_class, profile in PRODUCIBLE:
            for plugin in host_info[DATA]["plugin_info"]:
                for vif in plugin[DATA]["vif_info"]:
                    data = vif[DATA]
                    if data["vif_object_name"] != vif_class:
                        continue
                    version = self._highest_within(vif_class, data["min_version"], data["max_version"])
                    if version is None:
                        continue
                    profiles = data.get("supported_port_profiles") or []
                    profile_version = None
                    if profile and profiles:
                        listed = [p[DATA] for p in profiles if p[DATA]["profile_object_name"] == profile]
                        if not listed:
                            continue
                        profile_version = self._highest_within(profile, listed[0]["min_version"],
                                                               listed[0]["max_version"])
                        if profile_version is None:
                            continue
                    return vif_class, plugin[DATA]["plugin_name"], version, profile, profile_version
        return None

    def _port(self, network, subnets, instance, port_id):
        key = port_id.lower()
        existing = self.ports.get(key)
        if existing:
            if existing["instance"] == instance.lower() and existing["network"] == network["id"].lower():
                return existing
            raise PortInUse(existing)
        taken = {ip for port in self.ports.values() if port["network"] == network["id"].lower() for ip in port["ips"]}
        ips = []
        for cidr, gateway, dns in subnets:
            reserved = taken | {gateway} | set(dns)
            free = next((str(host) for host in cidr.hosts() if str(host) not in reserved), None)
            if free is None:
                raise RuntimeError(f"subnet {cidr} is full")
            ips.append(free)
        tail = "".join(c for c in key if c in "0123456789abcdef")[-6:]
        port = {"instance": instance.lower(), "network": network["id"].lower(), "ips": ips,
                "mac": "fa:16:3e:" + ":".join(tail[i:i + 2] for i in (0, 2, 4))}
        self.ports[key] = port
        return port

    def create_port(self, params, method):
        found = self.networks.get(params["network_id"].lower())
        if found is None:
            raise RpcError(**method.error("NetworkNotFound", {"network_id": params["network_id"]}))
        network, subnets = found
        host_info = params["host_info"]
        choice = self._negotiate(host_info)
        if choice is None:
            raise RpcError(**method.error("NoCompatibleVif", {
                "vif_classes": [vif_class for vif_class, _ in PRODUCIBLE],
                "plugins": [plugin[DATA]["plugin_name"] for plugin in host_info[DATA]["plugin_info"]]}))
        vif_class, plugin, version, profile, profile_version = choice
        port_id = params["port_id"]
        with self.lock:
            try:
                port = self._port(network, subnets, params["instance"][DATA]["uuid"], port_id)
            except PortInUse as in_use:
                raise RpcError(**method.error("PortInUse", {
                    "port_id": port_id, "instance_uuid": in_use.port["instance"],
                    "network_id": in_use.port["network"]})) from None
        d = self.description
        os_vif_subnets = []
        for (cidr, gateway, dns), ip in zip(subnets, port["ips"]):
            fixed = envelope(d, "FixedIP", {"address": ip, "floating_ips": []})
            subnet = {"cidr": str(cidr), "dns": dns, "ips": envelope(d, "FixedIPList", {"objects": [fixed]}),
                      "routes": envelope(d, "RouteList", {"objects": []})}
            if gateway:
                subnet["gateway"] = gateway
            os_vif_subnets.append(envelope(d, "Subnet", subnet))
        net = {"id": network["id"], "bridge": network.get("bridge", "br-int"), "multi_host": False,
               "should_provide_bridge": False, "should_provide_vlan": False,
               "subnets": envelope(d, "SubnetList", {"objects": os_vif_subnets})}
        for optional in ("label", "mtu"):
            if optional in network:
                net[optional] = network[optional]
        short = port_id.lower()[:11]
        data = {"active": False, "address": port["mac"], "has_traffic_filtering": vif_class == "VIFOpenVSwitch",
                "id": port_id, "network": envelope(d, "Network", net), "plugin": plugin, "preserve_on_delete": False}
        if vif_class == "VIFVHostUser":
            data.update({"mode": "server", "path": f"/var/run/openvswitch/vhu{short}", "vif_name": f"vhu{short}"})
        else:
            data.update({"bridge_name": network.get("bridge", "br-int"), "vif_name": f"tap{short}"})
        if profile and profile_version:
            datapath = "system" if vif_class == "VIFOpenVSwitch" else "netdev"
            data["port_profile"] = envelope(d, profile, {
                "interface_id": port_id, "datapath_type": datapath, "create_port": False, "create_tap": False,
                "multiqueue": False}, profile_version)
        return envelope(d, vif_class, data, version)


class PortInUse(Exception):
    """The port exists for another instance or network."""

    def __init__(self, port):
        super().__init__("port in use")
        self.port = port


class Server:
    """Dispatches JSON-RPC frames to the driver and the network host."""

    def __init__(self, description, driver, network):
        self.description = description
        self.handlers = {
            "driver.start_discovery": lambda params, _method: driver.start_discovery(params),
            "driver.discovery_status": lambda params, _method: driver.discovery_status(params),
            "driver.list_hardware": lambda params, _method: driver.list_hardware(params),
            "network.create_port": network.create_port,
        }

    def named(self, method, params):
        """Params by name (positions mapped onto the method's params in order)."""
        if params is None:
            return {}
        if isinstance(params, list):
            if len(params) > len(method.params):
                raise RpcError(jsonrpc.INVALID_PARAMS, "Invalid params", [{
                    "pointer": "", "message":
                    f"{len(params)} positional params given, the method takes at most {len(method.params)}"}])
            return dict(zip(method.params, params))
        return params

    def call(self, name, params):
        """The result of one call; raises RpcError."""
        if name == "rpc.discover":
            if params not in (None, [], {}):
                raise RpcError(jsonrpc.INVALID_PARAMS, "Invalid params",
                               [{"pointer": "", "message": "rpc.discover takes no params"}])
            return self.description.document
        method = self.description.methods.get(name)
        if method is None or name not in self.handlers:
            raise RpcError(jsonrpc.METHOD_NOT_FOUND, "Method not found", f"no method `{name}`")
        named = self.named(method, params)
        if method.declares("UnsupportedVersion"):
            too_new = self.description.too_new(named)
            if too_new:
                raise RpcError(**method.error("UnsupportedVersion", {"object": too_new[0], "max_version": too_new[1]}))
        problems = Description.violations(method.params_validator, named)
        if problems:
            raise RpcError(jsonrpc.INVALID_PARAMS, "Invalid params", problems)
        return self.handlers[name](named, method)

    def answer(self, frame):
        """The reply text to one frame, or None."""
        batch, entries = jsonrpc.parse(frame)
        answers = []
        for entry in entries:
            if isinstance(entry, str):
                answers.append(entry)
                continue
            try:
                outcome = {"result": self.call(entry.method, entry.params)}
            except RpcError as error:
                outcome = {"error": error}
            except Exception:  # pylint: disable=broad-except
                traceback.print_exc(file=sys.stderr)
                outcome = {"error": RpcError(jsonrpc.INTERNAL_ERROR, "Internal error")}
            if entry.id is not None:
                answers.append(jsonrpc.response(entry.id, **outcome))
        return jsonrpc.reply(batch, answers)


def serve_lines(server, lines, write):
    """Answers each line of `lines` (bytes), writing replies with `write(text)`."""
    for line in lines:
        if not line.strip():
            continue
        text = server.answer(line.rstrip(b"\n"))
        if text is not None:
            write(text + "\n")


class _Connection(socketserver.StreamRequestHandler):
    """One Unix socket connection."""

    def handle(self):
        def write(text):
            self.wfile.write(text.encode())
            self.wfile.flush()
        try:
            serve_lines(self.server.vproto, self.rfile, write)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


class _TlsServer(socketserver.ThreadingTCPServer):
    """TCP whose connections speak TLS; the handshake runs in the connection's own thread."""
    daemon_threads = True
    allow_reuse_address = True
    tls = None

    def get_request(self):
        sock, peer = self.socket.accept()
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), peer


class _TlsConnection(_Connection):
    def handle(self):
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as error:
            print(f"server.py: TLS handshake with {self.client_address[0]} failed: {error}", file=sys.stderr)
            return
        super().handle()


def tls_context(cert, key):
    """The server side of TLS: `cert` (PEM chain) and its `key` (PEM, readable by its owner only)."""
    mode = os.stat(key).st_mode & 0o077
    if mode:
        raise ConfigError(f"--tls-key {key}: readable by group or others (mode {mode:04o}); chmod 600 it")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(f"--tls-cert {cert} / --tls-key {key}: {error}") from error
    return context


def run_until_stopped(listener, address, cleanup=None):
    """Serves `listener` in a thread, prints `address`, and stops on SIGTERM or SIGINT."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    print(address, flush=True)
    try:
        stop.wait()
    finally:
        listener.shutdown()
        listener.server_close()
        if cleanup:
            cleanup()


def serve_unix(server, path):
    """Serves `server` on a Unix socket at `path` until SIGTERM or SIGINT."""
    if os.path.exists(path):
        raise ConfigError(f"--listen unix:{path}: the file exists")
    previous = os.umask(0o177)
    try:
        listener = _UnixServer(path, _Connection)
    finally:
        os.umask(previous)
    listener.vproto = server
    run_until_stopped(listener, f"unix:{path}", lambda: os.unlink(path))


def serve_tls(server, host, port, context):
    """Serves `server` with TLS on TCP `host`:`port` (0: any free port) until SIGTERM or SIGINT."""
    listener = _TlsServer((host, port), _TlsConnection)
    listener.tls = context
    listener.vproto = server
    bound_host, bound_port = listener.server_address[:2]
    run_until_stopped(listener, f"tcp:{bound_host}:{bound_port}")


def tcp_address(text):
    """HOST and PORT of `tcp:HOST:PORT`."""
    host, _, port = text[len("tcp:"):].rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen {text}: expected tcp:HOST:PORT")
    return host, int(port)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--driver-config", required=True, help="the driver's hardware and discovery (JSON)")
    parser.add_argument("--network-config", required=True, help="the networks served (JSON)")
    parser.add_argument("--listen", default="stdio", help="stdio (the default), unix:PATH or tcp:HOST:PORT (TLS)")
    parser.add_argument("--tls-cert", default=None, help="tcp: the certificate chain presented (PEM)")
    parser.add_argument("--tls-key", default=None, help="tcp: its private key (PEM, mode 0600)")
    parser.add_argument("--openrpc", default=None, help="the published OpenRPC document")
    args = parser.parse_args()
    tcp = args.listen.startswith("tcp:")
    if args.listen != "stdio" and not args.listen.startswith("unix:") and not tcp:
        parser.error(f"--listen {args.listen}: expected stdio, unix:PATH or tcp:HOST:PORT")
    if tcp and not (args.tls_cert and args.tls_key):
        parser.error(f"--listen {args.listen}: TCP is served with TLS only: give --tls-cert and --tls-key")
    if not tcp and (args.tls_cert or args.tls_key):
        parser.error("--tls-cert and --tls-key apply to --listen tcp:HOST:PORT only")
    try:
        description = Description(args.openrpc) if args.openrpc else Description()
        server = Server(description, Driver(description, args.driver_config),
                        Network(description, args.network_config))
        if args.listen.startswith("unix:"):
            serve_unix(server, args.listen[len("unix:"):])
            return 0
        if tcp:
            host, port = tcp_address(args.listen)
            serve_tls(server, host, port, tls_context(args.tls_cert, args.tls_key))
            return 0
    except (ConfigError, OSError, ValueError, KeyError) as error:
        print(f"server.py: {error}", file=sys.stderr)
        return 2

    def write(text):
        sys.stdout.write(text)
        sys.stdout.flush()
    serve_lines(server, sys.stdin.buffer, write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
