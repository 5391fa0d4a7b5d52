// The app server's endpoints (voxkeep/local/webapp.py): tokens are minted there, never in the browser,
// and a caller's history can be read there while no call (so no agent) is up.
import type { ChatMessage, ChatSummary } from "@voxkeep/client";

export interface Grant {
  url: string;
  token: string;
  room: string;
}

export interface History {
  chats: ChatSummary[];
}

export interface StoredChat {
  chat: ChatSummary;
  messages: ChatMessage[];
}

async function json<T>(response: Response): Promise<T> {
  if (!response.ok) {
    const body = (await response.json().catch(() => ({}))) as { error?: string };
    throw new Error(body.error ?? `the app server answered ${response.status}`);
  }
  return (await response.json()) as T;
}

/** A token to join a new room as `identity`; with `resumeChatId`, the agent resumes that chat. */
export async function token(identity: string, resumeChatId?: string): Promise<Grant> {
  const response = await fetch("/api/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ identity, resume_chat_id: resumeChatId ?? null }),
  });
  return json<Grant>(response);
}

export async function chats(identity: string): Promise<ChatSummary[]> {
  const response = await fetch(`/api/chats?identity=${encodeURIComponent(identity)}`);
  return (await json<History>(response)).chats;
}

export async function chat(identity: string, chatId: string): Promise<StoredChat> {
  const response = await fetch(
    `/api/chats/${encodeURIComponent(chatId)}?identity=${encodeURIComponent(identity)}`,
  );
  return json<StoredChat>(response);
}
