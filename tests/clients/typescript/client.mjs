// Drives the generated TypeScript client (clients/typescript, built to dist/) for
// tests/clients/test_typescript_client.py:
//
//   node client.mjs list-hardware ADDR TOKEN     discovery, then the driver's hardware as JSON
//   node client.mjs every-method ADDR OPENRPC    every method with its first example, twice
//
// Prints one JSON line with what happened; exits 1 on any failure.
import { readFileSync } from "node:fs";
import { connect, errors, METHODS, REGISTRY, DeclaredError } from "../../../clients/typescript/dist/index.js";

const [mode, address, extra] = process.argv.slice(2);
const camel = (name) => name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());

async function listHardware() {
  const client = await connect(address, { token: extra });
  try {
    let status = await client.driver.startDiscovery();
    const deadline = Date.now() + 30000;
    while (status.status !== "DONE") {
      if (status.status !== "IN-PROGRESS" || Date.now() > deadline) throw new Error(`discovery: ${JSON.stringify(status)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      status = await client.driver.discoveryStatus();
    }
    const listed = await client.driver.listHardware();
    return { uuids: listed.hardware.map((h) => h.uuid), wire: REGISTRY.encodeObject("HardwareList", listed) };
  } finally {
    client.close();
  }
}

async function everyMethod() {
  const description = JSON.parse(readFileSync(extra, "utf8"));
  const client = await connect(address);
  const outcomes = {};
  try {
    for (const method of description.methods) {
      if (!method.examples || method.examples.length === 0) continue;
      const info = METHODS[method.name];
      if (!info) throw new Error(`${method.name}: not in the generated client`);
      const params = {};
      for (const given of method.examples[0].params) {
        const param = info.params.find((p) => p.name === given.name);
        params[given.name] = REGISTRY.decode(param.type, given.value);
      }
      const [service, name] = method.name.split(".");
      const proxy = client[camel(service)];
      const call = proxy[camel(name)].bind(proxy);
      const args = info.params.length > 0 ? [params] : [];
      const first = await call(...args);
      let second;
      try {
        await call(...args);
        second = "result";
      } catch (error) {
        if (!(error instanceof DeclaredError)) throw error;
        const cls = errors[error.constructor.name];
        if (cls === undefined || !(error instanceof cls) || cls.CODE !== error.code) throw new Error(`${method.name}: untyped ${error}`);
        second = error.constructor.name;
      }
      outcomes[method.name] = [first === null ? "null" : typeof first, second];
    }
    return { outcomes, backlevels: client.session.backlevels };
  } finally {
    client.close();
  }
}

try {
  const result = mode === "list-hardware" ? await listHardware() : await everyMethod();
  console.log(JSON.stringify(result));
} catch (error) {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
}
