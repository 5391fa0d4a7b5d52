// The console API (voxkeepctl serve, docs/console.md). Every call carries the operator's bearer
// token, kept for this tab only (sessionStorage), never in a URL.
export interface Chat {
  id: string;
  owner: string;
  agent_name: string | null;
  title: string | null;
  status: "active" | "closed" | "interrupted";
  end_reason: string | null;
  created_at: number;
  updated_at: number;
  ended_at: number | null;
  message_count: number;
  summary: string | null;
  metadata: Record<string, unknown>;
}

export interface Message {
  id: string;
  seq: number;
  role: "user" | "assistant" | "system" | "tool";
  content: string | null;
  tool_name: string | null;
  tool_call: Record<string, unknown> | null;
  tool_result: Record<string, unknown> | null;
  interrupted: boolean;
  confidence: number | null;
  started_at: number | null;
  ended_at: number | null;
  created_at: number;
  call_id: string | null;
  prosody: Prosody | null;
}

export interface Prosody {
  pitch?: { median_hz?: number; range_st?: number } | null;
  loudness?: { mean_db?: number } | null;
  rate?: { words_per_s?: number } | null;
  pauses?: { count?: number; total_s?: number } | null;
  relative?: { pitch_z?: number; loudness_z?: number; rate_z?: number; baseline_n?: number } | null;
}

export interface ProsodyPoint {
  seq: number;
  at: number;
  pitch_hz: number | null;
  loudness_db: number | null;
  rate_wps: number | null;
  pitch_z: number | null;
  loudness_z: number | null;
  rate_z: number | null;
}

export interface Filters {
  q?: string;
  owner?: string;
  status?: string;
  createdAfter?: number;
  createdBefore?: number;
}

/** A refusal or failure, with the API's code: unauthorized, forbidden, not_found, bad_request… */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = "voxkeep-console-token";

export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${savedToken() ?? ""}`);
  const response = await fetch(path, { ...init, headers });
  if (!response.ok) {
    const body = (await response.json().catch(() => ({}))) as { error?: string; message?: string };
    throw new ApiError(response.status, body.error ?? "http", body.message ?? `HTTP ${response.status}`);
  }
  return response;
}

async function json<T>(path: string, init?: RequestInit): Promise<T> {
  return (await (await call(path, init)).json()) as T;
}

export async function health(): Promise<{ ok: boolean }> {
  return json("/api/health");
}

export async function listChats(
  filters: Filters,
  cursor: string | null,
): Promise<{ chats: Chat[]; next_cursor: string | null }> {
  const params = new URLSearchParams({ limit: "50" });
  if (filters.q) params.set("q", filters.q);
  if (filters.owner) params.set("owner", filters.owner);
  if (filters.status) params.set("status", filters.status);
  if (filters.createdAfter !== undefined) params.set("created_after", String(filters.createdAfter));
  if (filters.createdBefore !== undefined) params.set("created_before", String(filters.createdBefore));
  if (cursor !== null) params.set("cursor", cursor);
  return json(`/api/chats?${params.toString()}`);
}

export async function getChat(id: string): Promise<Chat> {
  return json(`/api/chats/${encodeURIComponent(id)}`);
}

export async function messages(
  id: string,
  afterSeq: number,
  limit = 200,
): Promise<{ messages: Message[]; next_after_seq: number | null }> {
  const params = new URLSearchParams({ after_seq: String(afterSeq), limit: String(limit) });
  return json(`/api/chats/${encodeURIComponent(id)}/messages?${params.toString()}`);
}

export async function prosody(
  id: string,
): Promise<{ points: ProsodyPoint[]; baseline: Record<string, unknown> | null; measured: boolean }> {
  return json(`/api/chats/${encodeURIComponent(id)}/prosody`);
}

export async function rename(id: string, title: string): Promise<Chat> {
  return json(`/api/chats/${encodeURIComponent(id)}`, {
    method: "PATCH",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ title }),
  });
}

export async function remove(id: string): Promise<void> {
  await call(`/api/chats/${encodeURIComponent(id)}`, { method: "DELETE" });
}

/** Download the chat in one of the CLI's formats, through the token (so not a plain link). */
export async function download(id: string, format: "md" | "json" | "jsonl"): Promise<void> {
  const response = await call(`/api/chats/${encodeURIComponent(id)}/export?format=${format}`);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = `${id}.${format}`;
  document.body.append(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(url);
}

export function when(seconds: number | null): string {
  return seconds === null ? "–" : new Date(seconds * 1000).toLocaleString();
}
