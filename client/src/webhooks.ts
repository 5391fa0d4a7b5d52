/**
 * Checking a webhook request from the agent (docs/webhooks.md), in the team's backend: the
 * `Voxkeep-Webhook-Signature` header is `t=<unix seconds>,v1=<hex HMAC-SHA256>`, keyed with
 * `VOXKEEP_WEBHOOK_SECRET`, over the timestamp, a full stop and the raw body. Web Crypto only, so
 * it runs on Node 18+, Deno, Bun and edge runtimes alike.
 */

/** The header the agent signs each webhook request in. */
export const SIGNATURE_HEADER = "Voxkeep-Webhook-Signature";

export interface VerifyOptions {
  /** How far the signature's time may be from `now`, in seconds (300). */
  toleranceS?: number;
  /** The time to check against, in Unix seconds (the clock). */
  now?: number;
}

const encoder = new TextEncoder();

/**
 * True when `body` (the request's raw bytes, or its text exactly as received) was signed with
 * `secret` within the tolerance. Check before parsing the JSON.
 */
export async function verifyWebhook(
  secret: string,
  header: string,
  body: Uint8Array | string,
  options: VerifyOptions = {},
): Promise<boolean> {
  const fields = new Map<string, string>();
  for (const part of header.split(",")) {
    const at = part.indexOf("=");
    if (at > 0) fields.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  const timestamp = fields.get("t") ?? "";
  const signature = fields.get("v1") ?? "";
  const now = options.now ?? Date.now() / 1000;
  if (!/^\d+$/.test(timestamp) || Math.abs(now - Number(timestamp)) > (options.toleranceS ?? 300)) {
    return false;
  }
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const raw = typeof body === "string" ? encoder.encode(body) : body;
  const signed = new Uint8Array(timestamp.length + 1 + raw.length);
  signed.set(encoder.encode(`${timestamp}.`));
  signed.set(raw, timestamp.length + 1);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
  return constantTimeEqual(hex(mac), signature.toLowerCase());
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
