// The schema-independent part of the vproto TypeScript client: envelopes, version conversion,
// transports (newline-delimited JSON-RPC over TCP or a Unix socket, JSON-RPC over HTTP) and the
// negotiating call. Copied unchanged by `cargo xtask codegen` from templates/typescript; the
// generated modules stand on it. Conversion follows vproto's support crate
// (support/src/wire/convert.rs), itself oslo.versionedobjects' rules.

import * as http from "node:http";
import * as net from "node:net";

export const NAME = "versioned_object.name";
export const NAMESPACE = "versioned_object.namespace";
export const VERSION = "versioned_object.version";
export const DATA = "versioned_object.data";
export const CHANGES = "versioned_object.changes";
const ENVELOPE_KEYS = [NAME, NAMESPACE, VERSION, DATA, CHANGES];

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A JSON object. */
export type JsonObject = { [key: string]: Json };

/** A schema type as the generator's view writes it (`kind`, `name`, `item`, ...). */
export interface TypeView {
  kind: string;
  name: string | null;
  item: TypeView | null;
  resolved: TypeView | null;
  members: string[] | null;
  versioned: boolean;
  /** The type expression as the schema writes it. */
  schema?: unknown;
}

/** One field an object declares itself. */
export interface FieldSpec {
  name: string;
  since: string;
  removed: string | null;
  required: boolean;
  nullable: boolean;
  default: string | null;
  child: { object: string; versions: [string, string][] } | null;
  type: TypeView;
}

/** What conversion needs to know about one object. */
export interface ObjectSpec {
  name: string;
  namespace: string;
  versioned: boolean;
  version: string;
  versions: string[];
  base: { object: string; versions: [string, string][] } | null;
  tolerate_unknown_fields: boolean;
  fields: FieldSpec[];
}

/** A value that does not fit the schema, with where (a JSON pointer) and why. */
export class WireError extends Error {
  constructor(
    readonly path: string,
    readonly why: string,
  ) {
    super(`${path || "/"}: ${why}`);
    this.name = "WireError";
  }
}

type V = [number, number];

/** `MAJOR.MINOR` as two numbers. */
export function parseVersion(text: unknown, path = ""): V {
  if (typeof text !== "string" || !/^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$/.test(text)) {
    throw new WireError(path, `${JSON.stringify(text)} is not a MAJOR.MINOR version`);
  }
  const [major, minor] = text.split(".").map(Number);
  return [major, minor];
}

function cmp(a: V, b: V): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1];
}

function text(v: V): string {
  return `${v[0]}.${v[1]}`;
}

function child(path: string, key: string | number): string {
  return `${path}/${String(key).replace(/~/g, "~0").replace(/\//g, "~1")}`;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function mapped(pairs: [string, string][], version: V): V | null {
  let found: V | null = null;
  for (const [from, to] of pairs) {
    if (cmp(parseVersion(from), version) <= 0) found = parseVersion(to);
  }
  return found;
}

function copyJson<T extends Json>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** JSON with sorted keys and no spaces: the bytes the Rust side writes. */
export function dumps(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(dumps).join(",")}]`;
  if (isObject(value)) {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${dumps(value[key])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

/** A decoded object: its fields, and the object it is (for polymorphic fields). */
export interface DecodedObject {
  objectName?: string;
}

/** Every object of the schema and the conversions between their versions. */
export class Registry {
  constructor(readonly objects: Record<string, ObjectSpec>) {}

  info(name: string, path = ""): ObjectSpec {
    const found = this.objects[name];
    if (found === undefined) throw new WireError(path, `unknown object ${JSON.stringify(name)}`);
    return found;
  }

  /** The object and each of its bases, with the version of each that applies at `version`. */
  lineage(info: ObjectSpec, version: V, path = ""): [ObjectSpec, V][] {
    const chain: [ObjectSpec, V][] = [[info, version]];
    let current = info;
    let at = version;
    while (current.base !== null) {
      const next = mapped(current.base.versions, at);
      if (next === null) throw new WireError(path, `${current.name} ${text(at)} carries no version of ${current.base.object}`);
      current = this.info(current.base.object, path);
      at = next;
      chain.push([current, at]);
      if (chain.length > Object.keys(this.objects).length) throw new WireError(path, `${info.name}'s bases form a cycle`);
    }
    return chain;
  }

  checkVersion(info: ObjectSpec, version: V, path = ""): void {
    if (cmp(version, parseVersion(info.version)) > 0) {
      throw new WireError(path, `${info.name} ${text(version)} is newer than ${info.version}, the newest this client knows`);
    }
    if (!info.versions.includes(text(version))) {
      throw new WireError(path, `${info.name} has no version ${text(version)} (it has ${info.versions.join(", ")})`);
    }
  }

  parseEnvelope(value: unknown, path = ""): { info: ObjectSpec; version: V; data: JsonObject } {
    if (!isObject(value)) throw new WireError(path, "expected a versioned object envelope");
    for (const key of Object.keys(value)) {
      if (!ENVELOPE_KEYS.includes(key)) throw new WireError(path, `unexpected key \`${key}\``);
    }
    for (const key of [NAME, NAMESPACE, VERSION]) {
      if (typeof value[key] !== "string") throw new WireError(path, `\`${key}\` must be a string`);
    }
    const info = this.info(value[NAME] as string, path);
    if (!info.versioned) throw new WireError(path, `${info.name} is not a versioned object`);
    if (value[NAMESPACE] !== info.namespace) {
      throw new WireError(path, `${info.name} belongs to namespace \`${info.namespace}\`, not \`${String(value[NAMESPACE])}\``);
    }
    const version = parseVersion(value[VERSION], path);
    this.checkVersion(info, version, path);
    const data = value[DATA];
    if (!isObject(data)) throw new WireError(path, `\`${DATA}\` must be an object`);
    return { info, version, data };
  }

  fillDefaults(info: ObjectSpec, data: JsonObject, version: V, path = ""): void {
    for (const [object] of this.lineage(info, version, path)) {
      for (const field of object.fields) {
        if (field.removed === null && field.default !== null && !(field.name in data)) {
          data[field.name] = JSON.parse(field.default) as Json;
        }
      }
    }
  }

  backportData(info: ObjectSpec, data: JsonObject, target: V, path = ""): void {
    for (const [object, version] of this.lineage(info, target, path)) {
      for (const field of object.fields) {
        const since = parseVersion(field.since);
        const removed = field.removed === null ? null : parseVersion(field.removed);
        if (cmp(since, version) > 0 || (removed !== null && cmp(version, removed) >= 0)) {
          delete data[field.name];
          continue;
        }
        if (removed !== null && !(field.name in data) && field.default !== null) {
          data[field.name] = JSON.parse(field.default) as Json;
        }
        if (field.child !== null && field.name in data) {
          this.convertChildren(field.child, version, data[field.name], child(path, field.name));
        }
      }
    }
  }

  private convertChildren(spec: { object: string; versions: [string, string][] }, owner: V, value: Json, path: string): void {
    if (value === null) return;
    if (Array.isArray(value)) {
      value.forEach((item, index) => this.convertChildren(spec, owner, item, child(path, index)));
      return;
    }
    if (isObject(value) && !(NAME in value)) {
      for (const [key, item] of Object.entries(value)) this.convertChildren(spec, owner, item, child(path, key));
      return;
    }
    if (!isObject(value)) throw new WireError(path, `expected a ${spec.object} object`);
    const pinned = mapped(spec.versions, owner);
    if (pinned === null) return;
    const concrete = String(value[NAME] ?? "");
    let to: V | null = null;
    if (concrete === spec.object) {
      to = pinned;
    } else {
      const info = this.info(concrete, path);
      for (const candidate of [...info.versions].reverse()) {
        const base = this.lineage(info, parseVersion(candidate), path).find(([o]) => o.name === spec.object);
        if (base !== undefined && cmp(base[1], pinned) <= 0) {
          to = parseVersion(candidate);
          break;
        }
      }
      if (to === null) throw new WireError(path, `no version of ${concrete} carries ${spec.object} ${text(pinned)} or older`);
    }
    this.backportEnvelope(value, to, path);
  }

  /** Converts one envelope in place to `to` (down, or up by filling defaults). */
  backportEnvelope(value: JsonObject, to: V, path = ""): void {
    const { info, version: from, data: original } = this.parseEnvelope(value, path);
    this.checkVersion(info, to, path);
    const data = { ...original };
    if (cmp(to, from) > 0) this.fillDefaults(info, data, from, path);
    const current = parseVersion(info.version);
    if (cmp(to, current) !== 0 || cmp(from, current) !== 0) this.backportData(info, data, to, path);
    const changes = value[CHANGES];
    if (Array.isArray(changes)) {
      const kept = changes.filter((name) => typeof name === "string" && name in data);
      if (kept.length > 0) value[CHANGES] = kept;
      else delete value[CHANGES];
    }
    value[VERSION] = text(to);
    value[DATA] = data;
  }

  /** Converts every envelope of `name` inside `value` to `to`, in place; returns how many. */
  backportNamed(value: Json, name: string, to: V, path = ""): number {
    if (isObject(value) && value[NAME] === name) {
      this.backportEnvelope(value, to, path);
      return 1;
    }
    let converted = 0;
    if (Array.isArray(value)) value.forEach((item, i) => (converted += this.backportNamed(item, name, to, child(path, i))));
    else if (isObject(value)) {
      for (const [key, item] of Object.entries(value)) converted += this.backportNamed(item, name, to, child(path, key));
    }
    return converted;
  }

  /** The typed value of wire `value` of type `type`. */
  decode(type: TypeView, value: unknown, path = ""): unknown {
    switch (type.kind) {
      case "named":
        return this.decode(type.resolved as TypeView, value, path);
      case "string":
      case "boolean":
        if (typeof value !== type.kind) throw new WireError(path, `expected ${type.kind}`);
        return value;
      case "integer":
      case "number":
        if (typeof value !== "number" || (type.kind === "integer" && !Number.isInteger(value))) {
          throw new WireError(path, `expected ${type.kind}`);
        }
        return value;
      case "list":
        if (!Array.isArray(value)) throw new WireError(path, "expected a list");
        return value.map((item, i) => this.decode(type.item as TypeView, item, child(path, i)));
      case "map": {
        if (!isObject(value)) throw new WireError(path, "expected a map");
        const out: Record<string, unknown> = {};
        for (const [key, item] of Object.entries(value)) out[key] = this.decode(type.item as TypeView, item, child(path, key));
        return out;
      }
      case "object":
        return this.decodeObject(type.name as string, value, path);
      case "any_of": {
        const name = isObject(value) ? value[NAME] : undefined;
        if (typeof name !== "string" || !(type.members ?? []).includes(name)) {
          throw new WireError(path, `expected one of ${(type.members ?? []).join(", ")}`);
        }
        return this.decodeObject(name, value, path);
      }
      default:
        throw new WireError(path, `unknown type kind ${type.kind}`);
    }
  }

  /** The object `name` read from its wire form, at any version the schema knows. */
  decodeObject(name: string, value: unknown, path = ""): DecodedObject {
    let info = this.info(name, path);
    let version = parseVersion(info.version);
    let data: JsonObject;
    if (info.versioned) {
      const parsed = this.parseEnvelope(value, path);
      if (parsed.info.name !== name) throw new WireError(path, `expected ${name}, found ${parsed.info.name}`);
      ({ info, version } = parsed);
      data = { ...parsed.data };
    } else {
      if (!isObject(value)) throw new WireError(path, `expected a ${name} object`);
      data = { ...value };
    }
    const lineage = this.lineage(info, parseVersion(info.version), path);
    if (!info.tolerate_unknown_fields) {
      const known = new Set(lineage.flatMap(([o]) => o.fields.map((f) => f.name)));
      for (const key of Object.keys(data)) if (!known.has(key)) throw new WireError(child(path, key), `${name} has no field \`${key}\``);
    }
    this.fillDefaults(info, data, version, path);
    const out: Record<string, unknown> = info.versioned ? { objectName: name } : {};
    for (const [object] of lineage) {
      for (const field of object.fields) {
        if (field.removed !== null) continue;
        const at = child(path, field.name);
        if (!(field.name in data)) {
          if (field.required) throw new WireError(at, `${name} requires \`${field.name}\``);
          continue;
        }
        const item = data[field.name];
        if (item === null) {
          if (!field.nullable) throw new WireError(at, `\`${field.name}\` of ${name} cannot be null`);
          out[field.name] = null;
        } else {
          out[field.name] = this.decode(field.type, item, at);
        }
      }
    }
    return out as DecodedObject;
  }

  /** The wire form of typed `value` of type `type` (objects at their current version). */
  encode(type: TypeView, value: unknown, path = ""): Json {
    switch (type.kind) {
      case "named":
        return this.encode(type.resolved as TypeView, value, path);
      case "list":
        if (!Array.isArray(value)) throw new WireError(path, "expected a list");
        return value.map((item, i) => this.encode(type.item as TypeView, item, child(path, i)));
      case "map": {
        if (!isObject(value)) throw new WireError(path, "expected a map");
        const out: JsonObject = {};
        for (const [key, item] of Object.entries(value)) out[key] = this.encode(type.item as TypeView, item, child(path, key));
        return out;
      }
      case "object":
        return this.encodeObject(type.name as string, value, path);
      case "any_of": {
        const name = isObject(value) ? value.objectName : undefined;
        if (typeof name !== "string" || !(type.members ?? []).includes(name)) {
          throw new WireError(path, `set objectName to one of ${(type.members ?? []).join(", ")}`);
        }
        return this.encodeObject(name, value, path);
      }
      default:
        return value as Json;
    }
  }

  /** An object's wire form: its envelope at the current version (every set field changed), or
   * its plain JSON object. */
  encodeObject(name: string, value: unknown, path = ""): Json {
    const info = this.info(name, path);
    if (!isObject(value)) throw new WireError(path, `expected a ${name} object`);
    const data: JsonObject = {};
    for (const [object] of this.lineage(info, parseVersion(info.version), path)) {
      for (const field of object.fields) {
        if (field.removed !== null) continue;
        const item = value[field.name];
        if (item === undefined || (item === null && !field.nullable && !field.required)) {
          if (field.required) throw new WireError(child(path, field.name), `${name} requires \`${field.name}\``);
          continue;
        }
        data[field.name] = item === null ? null : this.encode(field.type, item, child(path, field.name));
      }
    }
    if (!info.versioned) return data;
    const envelope: JsonObject = { [NAME]: name, [NAMESPACE]: info.namespace, [VERSION]: info.version, [DATA]: data };
    const changes = Object.keys(data).sort();
    if (changes.length > 0) envelope[CHANGES] = changes;
    return envelope;
  }
}

/** Any failure of a call. */
export class VprotoError extends Error {}

/** An error answer the method does not declare. */
export class RpcError extends VprotoError {
  constructor(
    readonly code: number,
    readonly rpcMessage: string,
    readonly data: Json | undefined,
  ) {
    super(`${code} ${rpcMessage}${data === undefined ? "" : `: ${JSON.stringify(data).slice(0, 500)}`}`);
    this.name = "RpcError";
  }
}

/** A declared error of the protocol; the generated subclasses set the code and the data type. */
export class DeclaredError extends VprotoError {
  constructor(
    readonly code: number,
    readonly rpcMessage: string,
    readonly data: unknown,
  ) {
    super(`${code} ${rpcMessage}`);
    this.name = new.target.name;
  }
}

/** The server cannot be reached or answered something that is not JSON-RPC 2.0. */
export class TransportError extends VprotoError {}

/** A way to send requests and read their answers. */
export interface Transport {
  exchange(request: JsonObject): Promise<JsonObject>;
  close(): void;
}

/** Newline-delimited JSON-RPC over TCP or a Unix socket, one call at a time. */
class LineTransport implements Transport {
  private buffer = "";
  private waiting: ((line: string | null) => void)[] = [];
  private lines: string[] = [];
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly socket: net.Socket,
    private readonly address: string,
  ) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      let newline: number;
      while ((newline = this.buffer.indexOf("\n")) >= 0) {
        this.push(this.buffer.slice(0, newline));
        this.buffer = this.buffer.slice(newline + 1);
      }
    });
    const end = () => {
      this.closed = true;
      for (const wake of this.waiting.splice(0)) wake(null);
    };
    socket.on("close", end);
    socket.on("error", end);
  }

  private push(line: string): void {
    const wake = this.waiting.shift();
    if (wake) wake(line);
    else this.lines.push(line);
  }

  private next(): Promise<string | null> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  exchange(request: JsonObject): Promise<JsonObject> {
    const run = async (): Promise<JsonObject> => {
      this.socket.write(JSON.stringify(request) + "\n");
      for (;;) {
        const line = await this.next();
        if (line === null) throw new TransportError(`${this.address} closed the connection without answering ${String(request.method)}`);
        const answer = parseAnswer(line, this.address);
        if (!("id" in answer) && "method" in answer) continue; // an event
        return answer;
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}

/** JSON-RPC over HTTP: `POST /jsonrpc`. */
class HttpTransport implements Transport {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly address: string,
    private readonly token: string | undefined,
  ) {}

  exchange(request: JsonObject): Promise<JsonObject> {
    const body = JSON.stringify(request);
    const headers: Record<string, string> = { "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(body)) };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return new Promise((resolve, reject) => {
      const req = http.request({ host: this.host, port: this.port, method: "POST", path: "/jsonrpc", headers, agent: this.agent }, (res) => {
        let payload = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (payload += chunk));
        res.on("end", () => {
          try {
            resolve(parseAnswer(payload, this.address));
          } catch (error) {
            reject(error);
          }
        });
      });
      req.on("error", (error) => reject(new TransportError(`${this.address}: ${error.message}`)));
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function parseAnswer(raw: string, address: string): JsonObject {
  let answer: unknown;
  try {
    answer = JSON.parse(raw);
  } catch (error) {
    throw new TransportError(`${address}: the answer is not JSON: ${raw.slice(0, 200)}`);
  }
  if (!isObject(answer) || answer.jsonrpc !== "2.0") throw new TransportError(`${address}: not a JSON-RPC 2.0 response: ${raw.slice(0, 200)}`);
  return answer;
}

/** A transport to `unix:PATH`, `tcp:HOST:PORT` or `http://HOST:PORT`; `token` is presented as
 * `rpc.auth` first on `tcp:` and as `Authorization: Bearer` over HTTP. */
export async function openTransport(address: string, token?: string): Promise<Transport> {
  const connectSocket = (options: net.NetConnectOpts) =>
    new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect(options);
      socket.once("connect", () => resolve(socket));
      socket.once("error", (error) => reject(new TransportError(`cannot connect to ${address}: ${error.message}`)));
    });
  if (address.startsWith("unix:")) {
    return new LineTransport(await connectSocket({ path: address.slice("unix:".length) }), address);
  }
  if (address.startsWith("tcp:")) {
    const rest = address.slice("tcp:".length);
    const colon = rest.lastIndexOf(":");
    const port = Number(rest.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(port)) throw new TransportError(`cannot connect to ${address}: expected tcp:HOST:PORT`);
    const transport = new LineTransport(await connectSocket({ host: rest.slice(0, colon).replace(/^\[|\]$/g, ""), port }), address);
    if (token) {
      // vproto's tcp: listeners with credentials expect `rpc.auth` as the first message.
      const answer = await transport.exchange({ jsonrpc: "2.0", method: "rpc.auth", params: { token }, id: 0 });
      if ("error" in answer) {
        transport.close();
        throw new TransportError(`${address} refused the token: ${JSON.stringify(answer.error)}`);
      }
    }
    return transport;
  }
  if (address.startsWith("http://")) {
    const url = new URL(address);
    if (!url.port) throw new TransportError(`cannot connect to ${address}: expected http://HOST:PORT`);
    return new HttpTransport(url.hostname.replace(/^\[|\]$/g, ""), Number(url.port), address, token);
  }
  throw new TransportError(`cannot connect to ${address}: expected unix:PATH, tcp:HOST:PORT or http://HOST:PORT`);
}

/** What a call needs to know about one method. */
export interface MethodInfo {
  wireName: string;
  params: { name: string; type: TypeView; required: boolean }[];
  result: TypeView | null;
  errors: Record<number, new (code: number, message: string, data: unknown) => DeclaredError>;
  negotiates: boolean;
}

/** One connection and its calls: declared errors thrown typed, UnsupportedVersion answered by
 * backlevelling the named object and retrying once. */
export class Session {
  private nextId = 1;
  /** `[method, object, version]` of every backlevel made, oldest first. */
  readonly backlevels: [string, string, string][] = [];

  constructor(
    readonly transport: Transport,
    readonly registry: Registry,
    readonly unsupportedCode: number | null,
  ) {}

  async call(method: MethodInfo, params: Record<string, unknown>): Promise<unknown> {
    const wire: JsonObject = {};
    for (const param of method.params) {
      const value = params[param.name];
      if (value === undefined) {
        if (param.required) throw new WireError(`/${param.name}`, `${method.wireName} requires \`${param.name}\``);
        continue;
      }
      wire[param.name] = this.registry.encode(param.type, value, `/${param.name}`);
    }
    for (let attempt = 1; ; attempt++) {
      const id = this.nextId++;
      const answer = await this.transport.exchange({ jsonrpc: "2.0", method: method.wireName, params: wire, id });
      if (answer.id !== id) throw new TransportError(`${method.wireName}: the answer's id ${JSON.stringify(answer.id)} is not ${id}`);
      if (!("error" in answer)) {
        return method.result === null ? null : this.registry.decode(method.result, answer.result);
      }
      const error = answer.error;
      if (!isObject(error) || typeof error.code !== "number") throw new TransportError(`${method.wireName}: a malformed error`);
      const data = error.data;
      if (method.negotiates && error.code === this.unsupportedCode && attempt === 1 && isObject(data)) {
        const name = String(data.object);
        if (this.registry.backportNamed(wire, name, parseVersion(data.max_version)) > 0) {
          this.backlevels.push([method.wireName, name, String(data.max_version)]);
          continue;
        }
      }
      const declared = method.errors[error.code];
      if (declared === undefined) throw new RpcError(error.code, String(error.message), data);
      throw new declared(error.code, String(error.message), data);
    }
  }

  close(): void {
    this.transport.close();
  }
}
