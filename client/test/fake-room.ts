import type { Room } from "livekit-client";

import {
  type AttributesListener,
  CHAT_ATTRIBUTE,
  type ControlParticipant,
  type ControlRoom,
  type DataListener,
  type DataOptions,
  type DisconnectedListener,
  type ParticipantListener,
  type RpcCall,
} from "../src/room.js";

/** A real `Room` is what users pass: it must fit (checked by the compiler). */
export const roomFits = (room: Room): ControlRoom => room;

export class Participant implements ControlParticipant {
  constructor(
    readonly identity: string,
    public attributes: Record<string, string> = {},
    readonly isAgent = false,
  ) {}
}

export interface Sent {
  payload: Record<string, unknown>;
  options: DataOptions | undefined;
}

/**
 * A room with an agent in it, as the client sees one. The test plays the agent: `answer`
 * replies to each request (over RPC or data), and `emit` delivers packets and events.
 */
export class FakeRoom implements ControlRoom {
  readonly remoteParticipants = new Map<string, Participant>();
  readonly rpcCalls: RpcCall[] = [];
  readonly sent: Sent[] = [];
  answer: (request: Record<string, unknown>) => unknown = () => undefined;
  private readonly listeners = new Map<string, Set<(...args: never[]) => void>>();

  readonly localParticipant = {
    performRpc: async (call: RpcCall): Promise<string> => {
      this.rpcCalls.push(call);
      const reply = await this.answer(JSON.parse(call.payload) as Record<string, unknown>);
      if (reply instanceof Error) throw reply;
      return typeof reply === "string" ? reply : JSON.stringify(reply);
    },
    publishData: async (data: Uint8Array, options?: DataOptions): Promise<void> => {
      const payload = JSON.parse(new TextDecoder().decode(data)) as Record<string, unknown>;
      this.sent.push({ payload, options });
      const reply = await this.answer(payload);
      if (reply !== undefined) queueMicrotask(() => { this.fromAgent(reply); });
    },
  };

  join(participant: Participant): Participant {
    this.remoteParticipants.set(participant.identity, participant);
    this.emit("participantConnected", participant);
    return participant;
  }

  /** The agent joins; with a chat id it already takes commands. */
  agentJoins(chatId?: string, identity = "agent-1"): Participant {
    return this.join(new Participant(identity, chatId ? { [CHAT_ATTRIBUTE]: chatId } : {}, true));
  }

  leave(participant: Participant): void {
    this.remoteParticipants.delete(participant.identity);
    this.emit("participantDisconnected", participant);
  }

  setAttribute(participant: Participant, key: string, value: string): void {
    participant.attributes = { ...participant.attributes, [key]: value };
    this.emit("participantAttributesChanged", { [key]: value }, participant);
  }

  /** A packet on `topic` from the agent (the first agent in the room) or `from`. */
  fromAgent(message: unknown, topic = "voxkeep.control", from?: Participant): void {
    const sender = from ?? [...this.remoteParticipants.values()].find((p) => p.isAgent);
    const data = new TextEncoder().encode(typeof message === "string" ? message : JSON.stringify(message));
    this.emit("dataReceived", data, sender, undefined, topic);
  }

  listenerCount(): number {
    return [...this.listeners.values()].reduce((n, set) => n + set.size, 0);
  }

  emit(event: string, ...args: unknown[]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      (listener as (...a: unknown[]) => void)(...args);
    }
  }

  on(event: "dataReceived", listener: DataListener): this;
  on(event: "participantAttributesChanged", listener: AttributesListener): this;
  on(event: "participantConnected" | "participantDisconnected", listener: ParticipantListener): this;
  on(event: "disconnected", listener: DisconnectedListener): this;
  on(event: string, listener: (...args: never[]) => void): this {
    const set = this.listeners.get(event) ?? new Set();
    set.add(listener);
    this.listeners.set(event, set);
    return this;
  }

  off(event: "dataReceived", listener: DataListener): this;
  off(event: "participantAttributesChanged", listener: AttributesListener): this;
  off(event: "participantConnected" | "participantDisconnected", listener: ParticipantListener): this;
  off(event: "disconnected", listener: DisconnectedListener): this;
  off(event: string, listener: (...args: never[]) => void): this {
    this.listeners.get(event)?.delete(listener);
    return this;
  }
}

/** The agent's success reply to `request`. */
export function ok(request: Record<string, unknown>, result: Record<string, unknown> = {}): Record<string, unknown> {
  return { v: 1, re: request["id"], type: `${String(request["type"])}.ok`, ...result };
}

export function error(
  request: Record<string, unknown> | null,
  code: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { v: 1, re: request ? request["id"] : null, type: "error", code, message: code, ...extra };
}
