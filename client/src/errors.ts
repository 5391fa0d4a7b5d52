import type { ErrorReply } from "./protocol.js";

/** The codes the agent replies with (docs/control.md). */
export type ErrorCode = ErrorReply["code"];

/** Failures of the client itself, apart from the codes the agent replies with. */
export type ClientErrorCode =
  /** No reply within the request's timeout (nothing is known about whether it acted). */
  | "timeout"
  /** No agent took commands in this room within the timeout. */
  | "no_agent"
  /** The room disconnected, or the client was closed, before the reply. */
  | "disconnected"
  /** The reply was not one the protocol allows. */
  | "bad_reply";

/** Codes worth a retry: the agent said so (`busy`, `rate_limited`, `unavailable`). */
export const RETRYABLE: ReadonlySet<string> = new Set<ErrorCode>(["busy", "rate_limited", "unavailable"]);

/** A command that failed: the protocol's code (docs/control.md) or the client's own. */
export class ControlError extends Error {
  override readonly name = "ControlError";

  constructor(
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    /** The id of the request it answers. */
    readonly requestId: string | null = null,
    /** When the agent says when to try again (`rate_limited`). */
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}
