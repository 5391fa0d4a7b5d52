export {
  AgentControl,
  type AgentControlOptions,
  type AgentStatus,
  type ChatState,
  type CommandOptions,
} from "./control.js";
export { type ClientErrorCode, ControlError, type ErrorCode, RETRYABLE } from "./errors.js";
export type * from "./protocol.js";
export {
  CHAT_ATTRIBUTE,
  type ControlParticipant,
  type ControlRoom,
  DEFAULT_TOPIC,
  RPC_METHOD,
} from "./room.js";
