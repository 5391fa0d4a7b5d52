// Generated from schema/protocol.schema.json by scripts/generate.mjs: do not edit.
// The agent's control protocol (docs/control.md), from the agent's own models.

/**
 * The agent's control protocol, version 1 (docs/control.md).
 */
export interface AgentControlProtocol {
  chat_started: ChatStarted;
  delete_chat: DeleteChat;
  delete_chat_ok: DeleteChatOk;
  erase_me: EraseMe;
  erase_me_ok: EraseMeOk;
  error: ErrorReply;
  get_chat: GetChat;
  get_chat_ok: GetChatOk;
  list_chats: ListChats;
  list_chats_ok: ListChatsOk;
  new_chat: NewChatCommand;
  new_chat_ok: NewChatOk;
  ping: Ping;
  ping_ok: PingOk;
  rename_chat: RenameChat;
  rename_chat_ok: RenameChatOk;
  resume_chat: ResumeChat;
  resume_chat_ok: ResumeChatOk;
}
/**
 * Sent to the caller whenever the current chat changes.
 *
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "ChatStarted".
 */
export interface ChatStarted {
  chat_id: string;
  message_count: number;
  reason?: ("not_found" | "unavailable" | "timeout" | "taken_over" | "deleted") | null;
  resumed: boolean;
  type: "chat.started";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "DeleteChat".
 */
export interface DeleteChat {
  chat_id: string;
  id: string;
  type: "delete_chat";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "DeleteChatOk".
 */
export interface DeleteChatOk {
  chat_id: string;
  re: string;
  type: "delete_chat.ok";
  v: 1;
}
/**
 * Erase the caller's whole history: first without `confirm` (nothing is deleted; the reply
 * carries a token), then again with that token to do it.
 *
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "EraseMe".
 */
export interface EraseMe {
  confirm?: string | null;
  id: string;
  type: "erase_me";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "EraseMeOk".
 */
export interface EraseMeOk {
  chat_count: number;
  chat_id?: string | null;
  confirm?: string | null;
  erased: boolean;
  expires_in_ms?: number | null;
  re: string;
  type: "erase_me.ok";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "ErrorReply".
 */
export interface ErrorReply {
  code:
    | "bad_request"
    | "unknown_type"
    | "too_large"
    | "not_found"
    | "forbidden"
    | "busy"
    | "rate_limited"
    | "unavailable"
    | "expired"
    | "internal";
  message: string;
  re: string | null;
  retry_after_ms?: number | null;
  type: "error";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "GetChat".
 */
export interface GetChat {
  before_seq?: number | null;
  chat_id: string;
  id: string;
  limit?: number;
  type: "get_chat";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "GetChatOk".
 */
export interface GetChatOk {
  chat: ChatSummary;
  messages: ChatMessage[];
  next_before_seq: number | null;
  re: string;
  type: "get_chat.ok";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "ChatSummary".
 */
export interface ChatSummary {
  created_at: number;
  id: string;
  message_count: number;
  status: "active" | "closed" | "interrupted";
  title: string | null;
  updated_at: number;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "ChatMessage".
 */
export interface ChatMessage {
  content: string | null;
  created_at: number;
  interrupted: boolean;
  prosody: Prosody | null;
  role: "user" | "assistant" | "system" | "tool";
  seq: number;
  truncated?: true | null;
}
/**
 * How the caller said a message (docs/prosody.md); a group is null when there was too
 * little voiced speech to measure it.
 *
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "Prosody".
 */
export interface Prosody {
  loudness: Loudness | null;
  pauses: Pauses | null;
  pitch: Pitch | null;
  rate: Rate | null;
  relative?: Relative | null;
  source: "acoustic";
  speech_s: number;
  v: 1;
  voice: VoiceQuality | null;
  voiced_s: number;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "Loudness".
 */
export interface Loudness {
  mean_db: number;
  range_db: number;
  std_db: number;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "Pauses".
 */
export interface Pauses {
  count: number;
  mean_s: number;
  total_s: number;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "Pitch".
 */
export interface Pitch {
  median_hz: number;
  p10_hz: number;
  p90_hz: number;
  range_st: number;
  slope_st_per_s: number;
  std_st: number;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "Rate".
 */
export interface Rate {
  source: "transcript" | "acoustic";
  words_per_s: number;
}
/**
 * z-scores against the caller's own baseline (docs/prosody.md).
 *
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "Relative".
 */
export interface Relative {
  baseline_n: number;
  loudness_z: number | null;
  pitch_z: number | null;
  range_z: number | null;
  rate_z: number | null;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "VoiceQuality".
 */
export interface VoiceQuality {
  hnr_db: number;
  jitter: number | null;
  shimmer: number | null;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "ListChats".
 */
export interface ListChats {
  cursor?: string | null;
  id: string;
  limit?: number;
  type: "list_chats";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "ListChatsOk".
 */
export interface ListChatsOk {
  chats: ChatSummary[];
  next_cursor: string | null;
  re: string;
  type: "list_chats.ok";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "NewChatCommand".
 */
export interface NewChatCommand {
  id: string;
  type: "new_chat";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "NewChatOk".
 */
export interface NewChatOk {
  chat_id: string;
  re: string;
  saved_chat_id: string | null;
  type: "new_chat.ok";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "Ping".
 */
export interface Ping {
  id: string;
  type: "ping";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "PingOk".
 */
export interface PingOk {
  chat_id: string;
  re: string;
  type: "ping.ok";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "RenameChat".
 */
export interface RenameChat {
  chat_id: string;
  id: string;
  title: string;
  type: "rename_chat";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "RenameChatOk".
 */
export interface RenameChatOk {
  chat_id: string;
  re: string;
  title: string;
  type: "rename_chat.ok";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "ResumeChat".
 */
export interface ResumeChat {
  chat_id: string;
  id: string;
  type: "resume_chat";
  v: 1;
}
/**
 * This interface was referenced by `AgentControlProtocol`'s JSON-Schema
 * via the `definition` "ResumeChatOk".
 */
export interface ResumeChatOk {
  chat_id: string;
  context_messages: number;
  message_count: number;
  re: string;
  saved_chat_id: string | null;
  type: "resume_chat.ok";
  v: 1;
}
