import { afterEach, describe, expect, it, vi } from "vitest";

import { AgentControl, type ChatState, ControlError } from "../src/index.js";
import { error, FakeRoom, ok, Participant } from "./fake-room.js";

afterEach(() => {
  vi.useRealTimers();
});

async function failure(promise: Promise<unknown>): Promise<ControlError> {
  try {
    await promise;
  } catch (caught) {
    if (caught instanceof ControlError) return caught;
    throw caught;
  }
  throw new Error("expected a ControlError");
}

describe("commands over RPC", () => {
  it("sends each command as a versioned request to the agent and returns its typed reply", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    room.answer = (request) => ok(request, { saved_chat_id: "chat_a", chat_id: "chat_b" });
    const control = new AgentControl(room);

    const reply = await control.newChat();

    expect(reply).toMatchObject({ type: "new_chat.ok", saved_chat_id: "chat_a", chat_id: "chat_b" });
    const [call] = room.rpcCalls;
    expect(call).toMatchObject({ destinationIdentity: "agent-1", method: "voxkeep.control" });
    const request = JSON.parse(call?.payload ?? "") as Record<string, unknown>;
    expect(request).toEqual({ v: 1, id: reply.re, type: "new_chat" });
  });

  it("passes each command's arguments in the protocol's names, leaving out the unset", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    const seen: Record<string, unknown>[] = [];
    room.answer = (request) => {
      seen.push(request);
      return ok(request, { chats: [], next_cursor: null, chat_id: "c", title: "t", erased: false, chat_count: 0 });
    };
    const control = new AgentControl(room);

    await control.listChats({ limit: 5 });
    await control.getChat("chat_x", { beforeSeq: 9, limit: 20 });
    await control.renameChat("chat_x", "Lisbon");
    await control.resumeChat("chat_x");
    await control.deleteChat("chat_x");
    await control.eraseMe();
    await control.confirmErase("tok_1");

    expect(seen.map(({ id: _id, ...rest }) => rest)).toEqual([
      { v: 1, type: "list_chats", limit: 5 },
      { v: 1, type: "get_chat", chat_id: "chat_x", before_seq: 9, limit: 20 },
      { v: 1, type: "rename_chat", chat_id: "chat_x", title: "Lisbon" },
      { v: 1, type: "resume_chat", chat_id: "chat_x" },
      { v: 1, type: "delete_chat", chat_id: "chat_x" },
      { v: 1, type: "erase_me" },
      { v: 1, type: "erase_me", confirm: "tok_1" },
    ]);
  });

  it("waits until the agent takes commands before sending", async () => {
    const room = new FakeRoom();
    room.answer = (request) => ok(request, { chat_id: "chat_a" });
    const control = new AgentControl(room);
    const agent = room.agentJoins(); // joined, but no chat yet: an RPC now would be refused

    const ping = control.ping();
    await Promise.resolve();
    expect(room.rpcCalls).toEqual([]);
    room.setAttribute(agent, "voxkeep.chat_id", "chat_a");

    expect(await ping).toMatchObject({ type: "ping.ok", chat_id: "chat_a" });
  });

  it("throws the agent's error code, and does not retry what a retry cannot fix", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    room.answer = (request) => error(request, "not_found");
    const control = new AgentControl(room);

    const failed = await failure(control.getChat("chat_gone"));

    expect([failed.code, failed.retryable]).toEqual(["not_found", false]);
    expect(room.rpcCalls).toHaveLength(1);
  });

  it("retries busy and unavailable with the same request id, so the agent acts once", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    const replies = ["busy", "unavailable", null];
    room.answer = (request) => {
      const code = replies.shift();
      return code ? error(request, code) : ok(request, { saved_chat_id: null, chat_id: "chat_b" });
    };
    const control = new AgentControl(room, { backoffMs: 1 });

    expect((await control.newChat()).chat_id).toBe("chat_b");

    const ids = room.rpcCalls.map((call) => (JSON.parse(call.payload) as { id: string }).id);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(1);
  });

  it("waits as long as rate_limited's retry_after_ms says before trying again", async () => {
    vi.useFakeTimers();
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    let calls = 0;
    room.answer = (request) => (++calls === 1 ? error(null, "rate_limited", { retry_after_ms: 400 }) : ok(request, { chat_id: "chat_a" }));
    const control = new AgentControl(room, { backoffMs: 1 });

    const ping = control.ping();
    await vi.advanceTimersByTimeAsync(399);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);

    expect((await ping).chat_id).toBe("chat_a");
    expect(calls).toBe(2);
  });

  it("sends a failed command again under its id when the app retries it", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    const replies = ["unavailable", "unavailable", null];
    room.answer = (request) => {
      const code = replies.shift();
      return code ? error(request, code) : ok(request, { saved_chat_id: "chat_a", chat_id: "chat_b" });
    };
    const control = new AgentControl(room, { retries: 1, backoffMs: 1 });

    const failed = await failure(control.newChat());
    const retried = await control.newChat({ requestId: failed.requestId });

    expect(retried.re).toBe(failed.requestId);
    const ids = room.rpcCalls.map((call) => (JSON.parse(call.payload) as { id: string }).id);
    expect(new Set(ids)).toEqual(new Set([failed.requestId]));
  });

  it("gives up after the retries it was allowed, with the last code", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    room.answer = (request) => error(request, "busy");
    const control = new AgentControl(room, { retries: 2, backoffMs: 1 });

    expect((await failure(control.newChat())).code).toBe("busy");
    expect(room.rpcCalls).toHaveLength(3);
  });

  it("times out a command the agent never answers", async () => {
    vi.useFakeTimers();
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    room.answer = () => new Promise(() => undefined);
    const control = new AgentControl(room, { timeoutMs: 2000 });

    const ping = failure(control.ping());
    await vi.advanceTimersByTimeAsync(2000);

    expect((await ping).code).toBe("timeout");
  });

  it("says no_agent when no agent takes commands in time", async () => {
    vi.useFakeTimers();
    const room = new FakeRoom();
    room.join(new Participant("bob")); // a person, not an agent
    const control = new AgentControl(room, { timeoutMs: 1000 });

    const ping = failure(control.ping());
    await vi.advanceTimersByTimeAsync(1000);

    expect((await ping).code).toBe("no_agent");
    expect(room.rpcCalls).toEqual([]);
  });

  it("maps LiveKit's RPC errors to the client's codes", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    room.answer = () => Object.assign(new Error("Method not supported at destination"), { code: 1400 });
    const control = new AgentControl(room, { retries: 0 });

    expect((await failure(control.ping())).code).toBe("no_agent");
  });

  it("refuses a reply that is not the protocol's", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    room.answer = () => "not json";
    const control = new AgentControl(room);

    expect((await failure(control.ping())).code).toBe("bad_reply");
  });

  it("follows list_chats' cursor through every page", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    const chat = (id: string) => ({ id, title: null, status: "closed", created_at: 1, updated_at: 1, message_count: 2 });
    room.answer = (request) =>
      request["cursor"] === undefined
        ? ok(request, { chats: [chat("c3"), chat("c2")], next_cursor: "k" })
        : ok(request, { chats: [chat("c1")], next_cursor: null });
    const control = new AgentControl(room);

    const ids: string[] = [];
    for await (const summary of control.chats({ limit: 2 })) ids.push(summary.id);

    expect(ids).toEqual(["c3", "c2", "c1"]);
    expect(room.rpcCalls.map((call) => (JSON.parse(call.payload) as { cursor?: string }).cursor)).toEqual([undefined, "k"]);
  });
});

describe("commands over data packets", () => {
  it("publishes reliably on the control topic to the agent only, and takes the reply addressed to it", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    const stranger = room.join(new Participant("mallory"));
    room.answer = (request) => {
      room.fromAgent(ok({ id: "someone-else", type: "ping" }, { chat_id: "x" })); // not ours
      room.fromAgent(ok(request, { chat_id: "forged" }), "voxkeep.control", stranger); // not the agent
      room.fromAgent(ok(request, { chat_id: "elsewhere" }), "other.topic"); // another topic
      return ok(request, { saved_chat_id: "chat_a", chat_id: "chat_b" });
    };
    const control = new AgentControl(room, { transport: "data" });

    const reply = await control.newChat();

    expect(reply.chat_id).toBe("chat_b");
    expect(room.rpcCalls).toEqual([]);
    expect(room.sent).toHaveLength(1);
    expect(room.sent[0]?.options).toEqual({ reliable: true, topic: "voxkeep.control", destinationIdentities: ["agent-1"] });
  });

  it("ties an error the agent could not tie to an id to the one request in flight", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    room.answer = () => error(null, "too_large");
    const control = new AgentControl(room, { transport: "data" });

    expect((await failure(control.ping())).code).toBe("too_large");
  });

  it("sends one request at a time, each getting its own reply", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    room.answer = (request) => ok(request, { chat_id: String(request["id"]) });
    const control = new AgentControl(room, { transport: "data" });

    const [a, b] = await Promise.all([control.ping(), control.ping()]);

    expect(a.chat_id).toBe(a.re);
    expect(b.chat_id).toBe(b.re);
    expect(a.re).not.toBe(b.re);
  });

  it("fails what is waiting when the room disconnects", async () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    room.answer = () => undefined; // never answers
    const control = new AgentControl(room, { transport: "data" });

    const ping = failure(control.ping());
    await vi.waitFor(() => { expect(room.sent).toHaveLength(1); });
    room.emit("disconnected");

    expect((await ping).code).toBe("disconnected");
  });
});

describe("the current chat", () => {
  it("follows the agent's attribute and chat.started, and tells subscribers", () => {
    const room = new FakeRoom();
    const agent = room.agentJoins("chat_a");
    const control = new AgentControl(room);
    const seen: ChatState[] = [];
    const unsubscribe = control.subscribe((state) => seen.push(state));
    const started: unknown[] = [];
    control.onChatStarted((event) => started.push(event));

    expect(control.chatId).toBe("chat_a");
    const event = { v: 1, type: "chat.started", chat_id: "chat_b", resumed: true, message_count: 4 };
    room.fromAgent(event);
    room.setAttribute(agent, "voxkeep.chat_id", "chat_c");
    room.fromAgent({ ...event, chat_id: "chat_d" }, "voxkeep.control", room.join(new Participant("mallory")));
    unsubscribe();
    room.setAttribute(agent, "voxkeep.chat_id", "chat_e");

    expect(seen.map((state) => state.chatId)).toEqual(["chat_b", "chat_c"]);
    expect(seen[0]?.started).toEqual(event);
    expect(started).toEqual([event]);
    expect(control.getState().chatId).toBe("chat_e");
  });

  it("says reconnecting when the agent leaves the caller, and resumed once another takes the same chat up", () => {
    const room = new FakeRoom();
    const control = new AgentControl(room);
    expect(control.getState().agent).toBe("waiting");
    const first = room.agentJoins("chat_a");
    expect(control.getState().agent).toBe("present");
    const statuses: string[] = [];
    control.subscribe((state) => statuses.push(state.agent));

    room.leave(first); // its worker died; the watcher removed it
    const next = room.agentJoins(undefined, "agent-2"); // on its way: no chat yet
    room.setAttribute(next, "voxkeep.chat_id", "chat_a");
    expect(statuses).toEqual(["reconnecting", "resumed"]);
    expect(control.getState()).toMatchObject({ chatId: "chat_a", agent: "resumed" });

    room.leave(next);
    room.agentJoins("chat_b", "agent-3"); // another chat altogether: a new start, not a resume
    expect(statuses).toEqual(["reconnecting", "resumed", "reconnecting", "present"]);
  });

  it("stops listening to the room when closed", () => {
    const room = new FakeRoom();
    room.agentJoins("chat_a");
    const control = new AgentControl(room);
    expect(room.listenerCount()).toBe(5);

    control.close();

    expect(room.listenerCount()).toBe(0);
  });
});
