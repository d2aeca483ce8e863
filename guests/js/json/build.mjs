// Builds the JavaScript `json` capability into a component with
// componentize-js (the StarlingMonkey engine and app.js, pre-initialised).
// Usage: node guests/js/json/build.mjs OUT.wasm   (toolchains: guests/toolchains.sh)
import { writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error("usage: node build.mjs OUT.wasm");
  process.exit(2);
}
let componentize;
try {
  ({ componentize } = await import("@bytecodealliance/componentize-js"));
} catch (e) {
  console.error(`${e.message}\nrun guests/toolchains.sh`);
  process.exit(1);
}
const { component } = await componentize({
  sourcePath: join(here, "app.js"),
  witPath: resolve(here, "../../../host/runtime/wit"),
  worldName: "capability",
  // Console output, randomness and clocks are not needed; fetch is.
  disableFeatures: ["stdio", "random", "clocks"],
});
await writeFile(out, component);
