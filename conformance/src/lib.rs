//! vproto-conformance: the conformance suite, derived at run time from the published description
//! of the protocol (the OpenRPC document `vproto_api::OPENRPC`, or any OpenRPC file given with
//! `--schema`), and its runner.
//!
//! Nothing here is written per method: every case comes from the description's methods, params,
//! examples, results, declared errors and JSON Schemas. The suite speaks raw JSON-RPC (exact
//! bytes on a line connection, or HTTP bodies), so it can judge any implementation in any
//! language.
//!
//! # Case IDs
//!
//! Every case has a stable ID, a `/`-separated path. `<m>` is a method as `service.method`;
//! `<pointer>` is a JSON pointer into the params object *without* its leading `/` (so
//! `registration/endpoint`, `host_info/versioned_object.data/plugin_info/0`).
//!
//! | ID | sends | expects |
//! |---|---|---|
//! | `protocol/parse-error` | a line that is not JSON | `-32700`, id `null` |
//! | `protocol/parse-error/truncated` | a JSON text cut short | `-32700`, id `null` |
//! | `protocol/invalid-request/not-an-object` | `1` | `-32600`, id `null` |
//! | `protocol/invalid-request/missing-jsonrpc` | no `jsonrpc` member | `-32600` |
//! | `protocol/invalid-request/wrong-jsonrpc-version` | `"jsonrpc": "1.0"` | `-32600` |
//! | `protocol/invalid-request/missing-method` | no `method` | `-32600` |
//! | `protocol/invalid-request/method-not-string` | `"method": 1` | `-32600` |
//! | `protocol/invalid-request/params-not-structured` | `"params": "bar"` | `-32600` |
//! | `protocol/invalid-request/id-not-scalar` | `"id": {}` | `-32600`, id `null` |
//! | `protocol/method-not-found` | an unknown method | `-32601`, id echoed |
//! | `protocol/rpc-reserved` | an unknown `rpc.` method | `-32601` |
//! | `protocol/notification-no-reply` | a notification, then a request | only the request's answer |
//! | `protocol/notification-unknown-method-no-reply` | a notification of an unknown method, then a request | only the request's answer |
//! | `protocol/notification-invalid-params-no-reply` | a notification with invalid params, then a request | only the request's answer |
//! | `protocol/batch/empty` | `[]` | one (non-array) `-32600`, id `null` |
//! | `protocol/batch/invalid-items` | `[1,2,3]` | an array of three `-32600` |
//! | `protocol/batch/invalid-json` | a batch cut short | one `-32700` |
//! | `protocol/batch/mixed` | request, notification, invalid item, unknown method, invalid params | one answer per request and per invalid item, matched by id |
//! | `protocol/batch/all-notifications` | only notifications, then a request | only the request's answer (HTTP: an empty body) |
//! | `protocol/id/{string,empty-string,integer,negative,fractional,large,null}` | a valid call with that id | its answer with the id echoed byte for byte |
//! | `protocol/params/by-name`, `protocol/params/by-position` | an example call both ways | a valid result |
//! | `protocol/params/omitted` | no `params` member (method without required params) | a valid result |
//! | `protocol/params/too-many-positions` | one positional param too many | `-32602` |
//! | `method/<m>/valid/example-<n>` | the method's n-th schema example (from 1), by name | a result valid against the result schema, or a declared error whose `data` is valid |
//! | `method/<m>/valid/example-<n>/by-position` | the same example by position | the same |
//! | `method/<m>/valid/generated-<n>` | params generated to satisfy the params' JSON Schemas (seeded, `--seed`) | the same |
//! | `method/<m>/invalid/missing/<pointer>` | a required param (or a required member of an object in a param) left out | `-32602` |
//! | `method/<m>/invalid/type/<pointer>` | the value at pointer replaced by one of a wrong JSON type | `-32602` |
//! | `method/<m>/invalid/constraint/<pointer>/<keyword>` | one JSON Schema keyword violated at pointer (`pattern`, `format`, `enum`, `const`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`, `minItems`, `maxItems`, `uniqueItems`, `additionalProperties`) | `-32602` |
//! | `negotiation/<m>/<param>/newer` | the versioned object in `<param>` one minor version newer than the schema's newest | the declared `UnsupportedVersion` error, its data naming the object and the newest version |
//! | `negotiation/<m>/<param>/nested/<Object>/newer` | the first nested `<Object>` in `<param>` one minor newer | the same, naming `<Object>` |
//! | `negotiation/<m>/<param>/older/<version>` | the object backleveled to `<version>` (vproto's generated conversions) | accepted: a valid result or a declared error other than `UnsupportedVersion` |
//! | `negotiation/<m>/<param>/nested/<Object>/older/<version>` | the nested `<Object>` backleveled to `<version>` (version manifest) | accepted |
//! | `tolerance/<m>/unknown-field/<pointer>` | an unknown member added to an object whose schema says `additionalProperties: true` (`tolerate_unknown_fields`) | accepted (not `-32602`) |
//! | `tolerance/<m>/unknown-value/<pointer>` | a value outside an open enumeration (`x-known-values`) | accepted (not `-32602`) |
//! | `rest/<m>/example-<n>` | (`http://` targets) the n-th example on the method's REST route (`x-http`): the params object as the body of POST/PUT/PATCH, no body otherwise; on a route with a body param (`x-http.body`) the param's value itself, and `.../wrapped` with the params object | 2xx with a valid result as the body, or another status with an error object the method declares |
//! | `events/<s>/...` | (line targets, services publishing events) subscriptions and notifications: see [`events`] | nothing before subscribing or after unsubscribing, only what was subscribed to, payloads valid |
//! | `serve/<m>/request-valid` | (serve mode) every request the client sent for `<m>` | valid params |
//! | `serve/<m>/backlevel-retry` | (serve mode) UnsupportedVersion answered to the first request carrying a versioned object with an older version | the client retries with that object at the named version |
//! | `serve/session` | (serve mode) the session as a whole | at least one request arrived |
//!
//! IDs are stable across runs for the same description and `--seed`. With `--reference` (or
//! several targets) each case is also labelled with its target (`driver`, `agent`, ...), but
//! `--only` and the known-failures file match the bare ID.
//!
//! # Command line
//!
//! ```text
//! vproto conform --target ADDR [--services a,b] [--only PATTERN]... [--known-failures FILE]
//!                [--fixtures FILE] [--allow-uncovered]
//!                [--token-file FILE] [--report text|json|junit] [--out FILE]
//!                [--schema OPENRPC-FILE] [--seed N] [--generated N] [--timeout DURATION]
//! vproto conform --reference [same options but --target/--token-file]
//! vproto conform --serve ADDR [--sessions N] [--idle DURATION] [--timeout DURATION]
//!                [--only PATTERN]... [--known-failures FILE] [--report ...] [--out FILE] [--schema FILE]
//! ```
//!
//! - `--target ADDR`: `unix:PATH`, `tcp:HOST:PORT`, `http://HOST:PORT` or `exec:COMMAND` (a server
//!   spawned with `sh -c`, speaking on its stdin/stdout; respawned if it dies mid-run).
//! - `--services a,b`: the services to test (default: every service of the description that
//!   the target answers: a service whose probe call gets `-32601` is not served).
//! - `--only PATTERN`: run only the cases whose ID matches the glob (`*` stays within one path
//!   segment, `**` crosses segments; a pattern without glob characters also matches every ID
//!   under it: `--only protocol/batch`). Repeatable.
//! - `--known-failures FILE`: one case ID or glob per line, `#` starts a comment. A listed case
//!   that fails is reported as an expected failure; a listed case that passes is reported as
//!   "now passing, remove it from the list" and fails the run.
//! - `--fixtures FILE`: a JSON object keyed by method name whose values are objects of param
//!   values by param name (`{"service.method": {"param": value}}`), used in that method's valid
//!   calls (examples, generated calls, and the cases derived from a valid call: invalid calls,
//!   negotiation, tolerance, protocol cases) in place of the examples' and generated values.
//!   Every method and param must exist and every value fit its param's schema ([`fixtures`]).
//! - `--allow-uncovered`: report uncovered methods without failing the run (see Coverage).
//! - `--report text|json|junit` (default text) written to `--out FILE` (default stdout);
//!   progress goes to stderr while the suite runs, and a summary naming every failed case with
//!   the request sent, the response received and what was expected ends the text report.
//! - `--seed N` (default 0): seeds generated values; `--generated N` (default 2): generated
//!   valid calls per method; `--timeout` (default 5s): the longest wait for one answer.
//! - `--serve ADDR`: a mock server validating a foreign client (`unix:`, `tcp:`, `http://`,
//!   `stdio`). The session ends when `--sessions N` connections have closed (line transports),
//!   when stdin closes (`stdio`), after `--idle` without a request once one arrived (default 2s),
//!   or at `--timeout` (default 60s).
//!
//! Exit status: 0 when every case passed (expected failures allowed) and every method is
//! covered, 1 when a case failed, a known failure now passes or a method is uncovered (without
//! `--allow-uncovered`), 2 for bad usage (a bad fixtures file included) or when the target
//! cannot be reached at all.
//!
//! # Coverage
//!
//! A case can pass without proving anything about a method's results: a valid call answered
//! with an error the method declares passes. So for each method tested the runner records
//! whether a successful result was observed and checked against the result schema
//! ([`coverage`]); a method with none is *uncovered*. Uncovered methods are named in the
//! summary line and in every report format (text: an `UNCOVERED` line per method; JSON:
//! `summary.uncovered` and `coverage`; JUnit: a failed `coverage/<m>` testcase) and fail the
//! run unless `--allow-uncovered` is given. Every method of the services tested is judged; with
//! `--only`, the methods the selected cases call in a way that could succeed.

#![warn(missing_docs)]

pub mod cases;
pub mod check;
pub mod compat;
pub mod conn;
pub mod coverage;
pub mod description;
pub mod events;
pub mod fixtures;
pub mod generate;
pub mod mock;
pub mod report;
pub mod run;

pub use description::{Description, DescriptionError, Method};
pub use fixtures::{FixtureError, Fixtures};
