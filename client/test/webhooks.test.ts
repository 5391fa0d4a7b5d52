import { readFile } from "node:fs/promises";

import { describe, expect, it } from "vitest";

import { verifyWebhook } from "../src/index.js";

// a request exactly as the worker signs one (tests/test_webhooks.py keeps this file so)
const fixture = JSON.parse(
  await readFile(new URL("./fixtures/webhook.json", import.meta.url), "utf8"),
) as { secret: string; timestamp: number; body: string; signature: string };
const at = { now: fixture.timestamp + 5 };

describe("verifyWebhook", () => {
  it("accepts what the worker signed, as text or bytes", async () => {
    expect(await verifyWebhook(fixture.secret, fixture.signature, fixture.body, at)).toBe(true);
    const bytes = new TextEncoder().encode(fixture.body);
    expect(await verifyWebhook(fixture.secret, fixture.signature, bytes, at)).toBe(true);
  });

  it("refuses another secret, a changed body and a mangled header", async () => {
    expect(await verifyWebhook("another", fixture.signature, fixture.body, at)).toBe(false);
    const changed = fixture.body.replace("alice", "mallet");
    expect(await verifyWebhook(fixture.secret, fixture.signature, changed, at)).toBe(false);
    expect(await verifyWebhook(fixture.secret, "v1=abc", fixture.body, at)).toBe(false);
    expect(await verifyWebhook(fixture.secret, "", fixture.body, at)).toBe(false);
  });

  it("refuses a request signed too long ago, or in the future", async () => {
    const late = { now: fixture.timestamp + 301 };
    expect(await verifyWebhook(fixture.secret, fixture.signature, fixture.body, late)).toBe(false);
    const early = { now: fixture.timestamp - 301 };
    expect(await verifyWebhook(fixture.secret, fixture.signature, fixture.body, early)).toBe(false);
    const lenient = { now: fixture.timestamp + 3600, toleranceS: 7200 };
    expect(await verifyWebhook(fixture.secret, fixture.signature, fixture.body, lenient)).toBe(true);
  });
});
