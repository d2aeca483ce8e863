// `json`: JSONPath queries over a JSON document, given inline or fetched over
// HTTP, a FemtoClaw capability in JavaScript (StarlingMonkey via
// componentize-js).
//
// `fetch` goes through the host's outgoing HTTP handler, so the policy's
// `net` allowlist, not this code, decides which URLs are reachable. The
// runtime validated each call's arguments against the input schema below
// before `invoke` runs.

import { log } from "femtoclaw:runtime/log@0.1.0";

const PATH = {
  type: "string",
  minLength: 1,
  maxLength: 1024,
  description: "JSONPath: $, .name, ['name'], [n], [start:end], [*], .*, ..name",
};
const MATCHES = { type: "array" };
const MAX_DOCUMENT = 1 << 20;

const TOOLS = [
  {
    name: "query",
    description: "Evaluate a JSONPath expression over a JSON document.",
    inputSchema: JSON.stringify({
      type: "object",
      properties: { document: {}, path: PATH },
      required: ["document", "path"],
      additionalProperties: false,
    }),
    outputSchema: JSON.stringify({
      type: "object",
      properties: { matches: MATCHES },
      required: ["matches"],
      additionalProperties: false,
    }),
    effect: "pure",
  },
  {
    name: "fetch_query",
    description: "GET a JSON document over HTTP and evaluate a JSONPath expression over it.",
    inputSchema: JSON.stringify({
      type: "object",
      properties: {
        url: { type: "string", pattern: "^https?://", maxLength: 4096 },
        path: PATH,
      },
      required: ["url", "path"],
      additionalProperties: false,
    }),
    outputSchema: JSON.stringify({
      type: "object",
      properties: { status: { type: "integer" }, matches: MATCHES },
      required: ["status", "matches"],
      additionalProperties: false,
    }),
    effect: "read",
  },
];

class QueryError extends Error {}

// Parses a JSONPath expression into steps: {kind: "child"|"descend", key}
// where key is a string, a number, "*" (as {all: true}) or a slice.
function parsePath(path) {
  let i = 0;
  const fail = (what) => {
    throw new QueryError(`JSONPath \`${path}\`: ${what} at offset ${i}`);
  };
  const name = () => {
    const m = /^[A-Za-z_$][\w$-]*/.exec(path.slice(i));
    if (!m) fail("expected a member name");
    i += m[0].length;
    return m[0];
  };
  const bracket = () => {
    const end = path.indexOf("]", i);
    if (end < 0) fail("unclosed `[`");
    const inner = path.slice(i + 1, end).trim();
    i = end + 1;
    if (inner === "*") return { all: true };
    const quoted = /^(['"])(.*)\1$/.exec(inner);
    if (quoted) return quoted[2];
    if (/^-?\d+$/.test(inner)) return Number(inner);
    const slice = /^(-?\d*):(-?\d*)$/.exec(inner);
    if (slice) {
      return { start: slice[1] === "" ? null : Number(slice[1]), end: slice[2] === "" ? null : Number(slice[2]) };
    }
    fail(`unsupported selector \`[${inner}]\``);
  };
  if (path[i] !== "$") fail("expected `$`");
  i++;
  const steps = [];
  while (i < path.length) {
    if (path.startsWith("..", i)) {
      i += 2;
      const key = path[i] === "[" ? bracket() : path[i] === "*" ? (i++, { all: true }) : name();
      steps.push({ kind: "descend", key });
    } else if (path[i] === ".") {
      i++;
      steps.push({ kind: "child", key: path[i] === "*" ? (i++, { all: true }) : name() });
    } else if (path[i] === "[") {
      steps.push({ kind: "child", key: bracket() });
    } else {
      fail(`unexpected \`${path[i]}\``);
    }
  }
  return steps;
}

function select(value, key) {
  if (value === null || typeof value !== "object") return [];
  if (key.all) return Object.values(value);
  if (typeof key === "number") {
    if (!Array.isArray(value)) return [];
    const index = key < 0 ? value.length + key : key;
    return index >= 0 && index < value.length ? [value[index]] : [];
  }
  if (typeof key === "object") {
    return Array.isArray(value) ? value.slice(key.start ?? 0, key.end ?? value.length) : [];
  }
  return !Array.isArray(value) && Object.hasOwn(value, key) ? [value[key]] : [];
}

// Every value at or below `value`, in document order.
function descendants(value, out = []) {
  out.push(value);
  if (value !== null && typeof value === "object") {
    for (const child of Object.values(value)) descendants(child, out);
  }
  return out;
}

function evaluate(document, path) {
  let current = [document];
  for (const step of parsePath(path)) {
    const from = step.kind === "descend" ? current.flatMap((v) => descendants(v)) : current;
    current = from.flatMap((v) => select(v, step.key));
  }
  return current;
}

async function fetchJson(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    // StarlingMonkey reports every transport error the same way, the host
    // refusing a destination outside the allowlist (logged by the host with
    // its rule) as much as a refused connection.
    throw { tag: "failed", val: `GET ${url}: ${e.message ?? e}` };
  }
  const text = await response.text();
  if (text.length > MAX_DOCUMENT) throw { tag: "failed", val: `GET ${url}: document over ${MAX_DOCUMENT} bytes` };
  try {
    return { status: response.status, document: JSON.parse(text) };
  } catch (e) {
    throw { tag: "failed", val: `GET ${url}: status ${response.status}, body is not JSON: ${e.message}` };
  }
}

async function run(tool, args) {
  switch (tool) {
    case "query":
      return { matches: evaluate(args.document, args.path) };
    case "fetch_query": {
      parsePath(args.path); // refuse a bad expression before any request
      const { status, document } = await fetchJson(args.url);
      return { status, matches: evaluate(document, args.path) };
    }
    default:
      throw { tag: "unknown-tool", val: tool };
  }
}

export const toolProvider = {
  describe() {
    return TOOLS;
  },

  async invoke(call) {
    log("info", `invoke ${call.tool}`);
    try {
      return JSON.stringify(await run(call.tool, JSON.parse(call.arguments)));
    } catch (e) {
      if (e instanceof QueryError) throw { tag: "invalid-arguments", val: e.message };
      if (e && typeof e.tag === "string") throw e;
      throw { tag: "failed", val: String(e) };
    }
  },
};
