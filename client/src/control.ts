import { ControlError } from "./errors.js";
import type {
  ChatStarted,
  ChatSummary,
  DeleteChatOk,
  EraseMeOk,
  ErrorReply,
  GetChatOk,
  ListChatsOk,
  NewChatOk,
  PingOk,
  RenameChatOk,
  ResumeChatOk,
} from "./protocol.js";
import {
  CHAT_ATTRIBUTE,
  type ControlParticipant,
  type ControlRoom,
  DEFAULT_TOPIC,
  RPC_METHOD,
} from "./room.js";

export interface AgentControlOptions {
  /** How commands travel: RPC (the default) or reliable data packets on `topic`. */
  transport?: "rpc" | "data";
  /** The control topic (the agent's `VOXKEEP_CONTROL_TOPIC`). */
  topic?: string;
  /** How long one attempt waits for its reply, and for the agent to be ready. */
  timeoutMs?: number;
  /** Attempts after the first when the agent says `busy`, `rate_limited` or `unavailable`. */
  retries?: number;
  /** The first wait before a retry the agent did not time (doubles each retry). */
  backoffMs?: number;
}

/** For a command that changes something. */
export interface CommandOptions {
  /**
   * The request's id. Pass a failed command's `ControlError.requestId` to try it again: the
   * agent acts on an id once (its first reply comes back), so a retry after a timeout cannot
   * act twice.
   */
  requestId?: string | null;
}

/**
 * Whether an agent is with the caller. `reconnecting`: the agent that served the chat left the
 * room while the caller stayed (its worker died; with continuation on, another worker's agent is
 * on its way, docs/resume.md). `resumed`: another agent has taken the same chat up since.
 */
export type AgentStatus = "waiting" | "present" | "reconnecting" | "resumed";

/** What the app knows about the current chat. */
export interface ChatState {
  /** The chat the agent writes to now, or null before the agent has said. */
  chatId: string | null;
  /** The newest `chat.started` event, if one has arrived. */
  started: ChatStarted | null;
  /** Whether an agent is with the caller. */
  agent: AgentStatus;
}

type Reply =
  | PingOk
  | NewChatOk
  | ListChatsOk
  | GetChatOk
  | ResumeChatOk
  | RenameChatOk
  | DeleteChatOk
  | EraseMeOk
  | ErrorReply;
type Body = { type: string } & Record<string, unknown>;

interface Waiting {
  id: string;
  resolve: (reply: Reply) => void;
  reject: (error: ControlError) => void;
}

const RPC_MIN_TIMEOUT_MS = 8000; // LiveKit clamps an RPC's response timeout to at least this

function newId(): string {
  return crypto.randomUUID(); // (a secure context, as LiveKit's media needs anyway)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function decode(payload: Uint8Array | string): Record<string, unknown> | null {
  try {
    const text = typeof payload === "string" ? payload : new TextDecoder().decode(payload);
    const value: unknown = JSON.parse(text);
    return isObject(value) && value["v"] === 1 && typeof value["type"] === "string" ? value : null;
  } catch {
    return null;
  }
}

/**
 * The caller's side of the agent's control protocol (docs/control.md) over a connected LiveKit
 * `Room`: typed commands, the current chat as observable state, retries the agent asks for.
 *
 * ```ts
 * const control = new AgentControl(room);
 * const { chat_id } = await control.newChat();
 * control.subscribe(({ chatId }) => render(chatId));
 * ```
 */
export class AgentControl {
  private readonly room: ControlRoom;
  private readonly transport: "rpc" | "data";
  private readonly topic: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private current: ChatState = { chatId: null, started: null, agent: "waiting" };
  private readonly listeners = new Set<(state: ChatState) => void>();
  private readonly startedListeners = new Set<(event: ChatStarted) => void>();
  private readonly readyWaiters = new Set<() => void>();
  private waiting: Waiting | null = null; // the data packet request in flight
  private queue: Promise<unknown> = Promise.resolve(); // data requests go one at a time
  private closed = false;

  constructor(room: ControlRoom, options: AgentControlOptions = {}) {
    this.room = room;
    this.transport = options.transport ?? "rpc";
    this.topic = options.topic ?? DEFAULT_TOPIC;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 250;
    room.on("dataReceived", this.onData);
    room.on("participantAttributesChanged", this.onAttributes);
    room.on("participantConnected", this.onParticipant);
    room.on("participantDisconnected", this.onParticipantLeft);
    room.on("disconnected", this.onDisconnected);
    const agent = this.agent();
    if (agent !== undefined) this.onParticipant(agent);
  }

  /** The chat the agent writes to now, or null before the agent has said. */
  get chatId(): string | null {
    return this.current.chatId;
  }

  /** The current chat; a new object whenever it changes (for `useSyncExternalStore`). */
  getState = (): ChatState => this.current;

  /** Call `listener` whenever the current chat changes; returns the unsubscribe function. */
  subscribe = (listener: (state: ChatState) => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Call `listener` with every `chat.started` event; returns the unsubscribe function. */
  onChatStarted(listener: (event: ChatStarted) => void): () => void {
    this.startedListeners.add(listener);
    return () => this.startedListeners.delete(listener);
  }

  /** The agent's identity, once it takes commands (its `voxkeep.chat_id` is set). */
  async ready(timeoutMs = this.timeoutMs): Promise<string> {
    const found = this.readyAgent();
    if (found !== undefined) return found.identity;
    return new Promise<string>((resolve, reject) => {
      const check = (): void => {
        const agent = this.readyAgent();
        if (agent === undefined && !this.closed) return;
        clearTimeout(timer);
        this.readyWaiters.delete(check);
        if (agent === undefined) reject(new ControlError("disconnected", "the control is closed"));
        else resolve(agent.identity);
      };
      const timer = setTimeout(() => {
        this.readyWaiters.delete(check);
        reject(new ControlError("no_agent", "no agent took commands in this room"));
      }, timeoutMs);
      this.readyWaiters.add(check);
    });
  }

  ping(): Promise<PingOk> {
    return this.request<PingOk>({ type: "ping" });
  }

  /** Save the current chat (an empty one is dropped) and start a new one. */
  newChat(options: CommandOptions = {}): Promise<NewChatOk> {
    return this.request<NewChatOk>({ type: "new_chat" }, options.requestId);
  }

  /** One page of the caller's chats, newest first; follow `next_cursor` for the next. */
  listChats(options: { limit?: number; cursor?: string | null } = {}): Promise<ListChatsOk> {
    return this.request<ListChatsOk>({ type: "list_chats", ...defined(options) });
  }

  /** Every chat of the caller, newest first, a page at a time. */
  async *chats(options: { limit?: number } = {}): AsyncGenerator<ChatSummary> {
    let cursor: string | null = null;
    do {
      const page: ListChatsOk = await this.listChats({ ...options, cursor });
      yield* page.chats;
      cursor = page.next_cursor;
    } while (cursor !== null);
  }

  /** A chat and one page of its messages, the newest first; older ones by `beforeSeq`. */
  getChat(chatId: string, options: { beforeSeq?: number; limit?: number } = {}): Promise<GetChatOk> {
    return this.request<GetChatOk>({
      type: "get_chat",
      chat_id: chatId,
      ...defined({ before_seq: options.beforeSeq, limit: options.limit }),
    });
  }

  /** Carry on in an earlier chat: the agent's context is rebuilt from it. */
  resumeChat(chatId: string, options: CommandOptions = {}): Promise<ResumeChatOk> {
    return this.request<ResumeChatOk>({ type: "resume_chat", chat_id: chatId }, options.requestId);
  }

  renameChat(chatId: string, title: string, options: CommandOptions = {}): Promise<RenameChatOk> {
    return this.request<RenameChatOk>({ type: "rename_chat", chat_id: chatId, title }, options.requestId);
  }

  /** Delete a chat; deleting the current one starts a new one. */
  deleteChat(chatId: string, options: CommandOptions = {}): Promise<DeleteChatOk> {
    return this.request<DeleteChatOk>({ type: "delete_chat", chat_id: chatId }, options.requestId);
  }

  /**
   * Erasing the caller's whole history, step one: nothing is deleted. The reply says how many
   * chats would go and carries the token `confirmErase` needs, valid once, for `expires_in_ms`.
   * Ask the person in between.
   */
  eraseMe(options: CommandOptions = {}): Promise<EraseMeOk> {
    return this.request<EraseMeOk>({ type: "erase_me" }, options.requestId);
  }

  /**
   * Step two: erase every chat of the caller. The call goes on in a new, empty chat (its id is
   * in the reply). A token that is unknown, used or too old fails with `expired`.
   */
  confirmErase(confirm: string, options: CommandOptions = {}): Promise<EraseMeOk> {
    return this.request<EraseMeOk>({ type: "erase_me", confirm }, options.requestId);
  }

  /** Stop listening to the room; commands still waiting fail with `disconnected`. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.room.off("dataReceived", this.onData);
    this.room.off("participantAttributesChanged", this.onAttributes);
    this.room.off("participantConnected", this.onParticipant);
    this.room.off("participantDisconnected", this.onParticipantLeft);
    this.room.off("disconnected", this.onDisconnected);
    this.waiting?.reject(new ControlError("disconnected", "the control is closed"));
    for (const check of [...this.readyWaiters]) check();
  }

  private async request<T extends Reply>(body: Body, requestId?: string | null): Promise<T> {
    const id = requestId ?? newId(); // the same id on every attempt: the agent acts on it once
    const expected = `${body.type}.ok`;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new ControlError("disconnected", "the control is closed", id);
      try {
        const reply = await this.attempt({ v: 1, id, ...body });
        if (reply.type === "error") {
          throw new ControlError(reply.code, reply.message, reply.re ?? id, reply.retry_after_ms ?? null);
        }
        if (reply.type !== expected || reply.re !== id) {
          throw new ControlError("bad_reply", `expected ${expected}`, id);
        }
        return reply as T;
      } catch (error) {
        if (!(error instanceof ControlError) || !error.retryable || attempt >= this.retries) throw error;
        await sleep(error.retryAfterMs ?? this.backoffMs * 2 ** attempt);
      }
    }
  }

  private async attempt(request: Body & { id: string }): Promise<Reply> {
    const agent = await this.ready();
    const payload = JSON.stringify(request);
    if (this.transport === "rpc") return this.overRpc(agent, request.id, payload);
    const turn = this.queue.then(() => this.overData(agent, request.id, payload));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async overRpc(agent: string, id: string, payload: string): Promise<Reply> {
    const call = this.room.localParticipant.performRpc({
      destinationIdentity: agent,
      method: RPC_METHOD,
      payload,
      responseTimeout: Math.max(this.timeoutMs, RPC_MIN_TIMEOUT_MS),
    });
    const answer = await this.within(call, id).catch((error: unknown) => {
      throw error instanceof ControlError ? error : rpcFailure(error, id);
    });
    const reply = decode(answer);
    if (reply === null) throw new ControlError("bad_reply", "the reply is not protocol JSON", id);
    return reply as unknown as Reply;
  }

  private overData(agent: string, id: string, payload: string): Promise<Reply> {
    const replied = new Promise<Reply>((resolve, reject) => {
      this.waiting = { id, resolve, reject };
    });
    const sent = this.room.localParticipant
      .publishData(new TextEncoder().encode(payload), {
        reliable: true,
        topic: this.topic,
        destinationIdentities: [agent],
      })
      .then(() => replied);
    return this.within(sent, id).finally(() => {
      if (this.waiting?.id === id) this.waiting = null;
    });
  }

  private within<T>(promise: Promise<T>, id: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new ControlError("timeout", `no reply within ${this.timeoutMs} ms`, id));
      }, this.timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => {
      clearTimeout(timer);
    });
  }

  private agent(): ControlParticipant | undefined {
    for (const participant of this.room.remoteParticipants.values()) {
      if (participant.isAgent) return participant;
    }
    return undefined;
  }

  private readyAgent(): ControlParticipant | undefined {
    const agent = this.agent();
    const takes = agent !== undefined && (CHAT_ATTRIBUTE in agent.attributes || this.current.started !== null);
    return takes ? agent : undefined;
  }

  private update(state: ChatState): void {
    const same = state.chatId === this.current.chatId && state.started === this.current.started;
    if (same && state.agent === this.current.agent) return;
    this.current = state;
    for (const listener of [...this.listeners]) listener(state);
    for (const check of [...this.readyWaiters]) check();
  }

  private readonly onData = (
    payload: Uint8Array,
    participant?: ControlParticipant,
    _kind?: unknown,
    topic?: string,
  ): void => {
    if (topic !== this.topic || !participant?.isAgent) return;
    const message = decode(payload);
    if (message === null) return;
    if (message["type"] === "chat.started") {
      const started = message as unknown as ChatStarted;
      this.update({ chatId: started.chat_id, started, agent: this.statusFor(started.chat_id) });
      for (const listener of [...this.startedListeners]) listener(started);
      return;
    }
    const waiting = this.waiting;
    const re = message["re"];
    // data requests go one at a time, so an error the agent could not tie to an id is its
    if (waiting !== null && (re === waiting.id || (re === null && message["type"] === "error"))) {
      waiting.resolve(message as unknown as Reply);
    }
  };

  private readonly onAttributes = (changed: Record<string, string>, participant: ControlParticipant): void => {
    const chatId = changed[CHAT_ATTRIBUTE];
    if (participant.isAgent && chatId !== undefined && chatId !== "") {
      this.update({ ...this.current, chatId, agent: this.statusFor(chatId) });
    }
  };

  private readonly onParticipant = (participant: ControlParticipant): void => {
    if (!participant.isAgent) return;
    const chatId = participant.attributes[CHAT_ATTRIBUTE];
    if (chatId !== undefined && chatId !== "") {
      this.update({ ...this.current, chatId, agent: this.statusFor(chatId) });
    } else if (this.current.agent === "waiting") {
      this.update({ ...this.current, agent: "present" });
    } // (reconnecting: until the new agent says which chat it holds)
    for (const check of [...this.readyWaiters]) check();
  };

  private readonly onParticipantLeft = (participant: ControlParticipant): void => {
    if (participant.isAgent && this.agent() === undefined && !this.closed) {
      this.update({ ...this.current, agent: "reconnecting" });
    }
  };

  /** An agent says it holds `chatId`: after a lost agent, the same chat is a resumed one. */
  private statusFor(chatId: string): AgentStatus {
    if (this.current.agent === "reconnecting" || this.current.agent === "resumed") {
      return chatId === this.current.chatId ? "resumed" : "present";
    }
    return "present";
  }

  private readonly onDisconnected = (): void => {
    this.waiting?.reject(new ControlError("disconnected", "the room disconnected"));
  };
}

function defined(values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined && value !== null));
}

/** LiveKit's RPC errors (`RpcError.code`) in the protocol's terms. */
function rpcFailure(error: unknown, id: string): ControlError {
  const code = isObject(error) && typeof error["code"] === "number" ? error["code"] : 0;
  const message = error instanceof Error ? error.message : "the RPC failed";
  if (code === 1400) return new ControlError("no_agent", message, id); // unsupported method
  if (code === 1503) return new ControlError("disconnected", message, id); // recipient left
  return new ControlError("timeout", message, id); // 1501, 1502: no connection or no answer
}
