import { readFile } from "node:fs/promises";

import { expect, it } from "vitest";

import { generate, TYPES } from "../scripts/generate.mjs";

it("the protocol's types are exactly what the agent's exported schema gives", async () => {
  // the schema is the agent's own (tests/control/test_schema.py keeps it so); these types
  // come from it, so the client cannot drift from the agent
  expect(await readFile(TYPES, "utf8")).toBe(await generate());
});
