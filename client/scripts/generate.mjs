// The protocol's TypeScript types, generated from the JSON Schema the agent exports from its
// own models (`voxkeepctl protocol schema > client/schema/protocol.schema.json`).
//   node scripts/generate.mjs          writes src/protocol.ts
//   node scripts/generate.mjs --check  fails when src/protocol.ts is not what the schema gives
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { compile } from "json-schema-to-typescript";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
export const SCHEMA = here("../schema/protocol.schema.json");
export const TYPES = here("../src/protocol.ts");

const BANNER = `// Generated from schema/protocol.schema.json by scripts/generate.mjs: do not edit.
// The agent's control protocol (docs/control.md), from the agent's own models.`;

export async function generate() {
  const schema = JSON.parse(await readFile(SCHEMA, "utf8"));
  return compile(schema, "AgentControlProtocol", {
    bannerComment: BANNER,
    additionalProperties: false,
    unreachableDefinitions: true,
    strictIndexSignatures: true,
    format: true,
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const types = await generate();
  if (process.argv.includes("--check")) {
    if ((await readFile(TYPES, "utf8")) !== types) {
      console.error("src/protocol.ts is not what the schema gives: run npm run generate");
      process.exit(1);
    }
  } else {
    await writeFile(TYPES, types);
  }
}
