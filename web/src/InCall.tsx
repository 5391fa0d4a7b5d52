import { useConnectionState, useTranscriptions, useVoiceAssistant } from "@livekit/components-react";
import { type AgentControl, type ChatMessage, type ChatSummary, ControlError } from "@voxkeep/client";
import type { Room } from "livekit-client";
import { useEffect, useState, useSyncExternalStore } from "react";

import { EraseButton } from "./EraseButton";
import { NewChatButton } from "./NewChatButton";
import { Sidebar } from "./Sidebar";
import { type LiveLine, Transcript } from "./Transcript";

/** The attribute LiveKit Agents sets on a transcription stream once its text is final. */
const FINAL = "lk.transcription_final";

interface Opened {
  title: string | null;
  messages: ChatMessage[];
}

/** The caller's chats, and the current chat's newest messages in order. */
async function read(control: AgentControl): Promise<[ChatSummary[], Opened]> {
  const page = await control.listChats({ limit: 50 });
  const chatId = control.chatId;
  if (chatId === null) return [page.chats, { title: null, messages: [] }];
  const chat = await control.getChat(chatId, { limit: 100 });
  return [page.chats, { title: chat.chat.title, messages: [...chat.messages].sort((a, b) => a.seq - b.seq) }];
}

function describe(error: unknown): string {
  if (error instanceof ControlError) return `${error.message} (${error.code})`;
  return error instanceof Error ? error.message : String(error);
}

export function InCall({ room, control, identity }: { room: Room; control: AgentControl; identity: string }) {
  const connection = useConnectionState(room);
  const { state: agentState } = useVoiceAssistant();
  const { chatId, agent } = useSyncExternalStore(control.subscribe, control.getState);
  const transcriptions = useTranscriptions();
  const [chats, setChats] = useState<ChatSummary[]>([]);
  const [opened, setOpened] = useState<Opened>({ title: null, messages: [] });
  const [problem, setProblem] = useState<string | null>(null);
  const [micOn, setMicOn] = useState(true);
  const [micSwitching, setMicSwitching] = useState(false);
  const [changes, setChanges] = useState(0); // one more after each command of the caller's
  const listening = agentState === "listening";

  // the list and the transcript follow the current chat, each finished turn and each command
  useEffect(() => {
    let current = true;
    read(control).then(
      ([page, chat]) => {
        if (!current) return;
        setChats(page);
        setOpened(chat);
        setProblem(null);
      },
      (error: unknown) => {
        if (current) setProblem(describe(error));
      },
    );
    return () => {
      current = false;
    };
  }, [control, chatId, listening, changes]);

  const changed = () => {
    setChanges((n) => n + 1);
  };
  const act = async (action: () => Promise<unknown>) => {
    try {
      await action();
      changed();
    } catch (error) {
      setProblem(describe(error));
    }
  };

  // the button waits for the microphone to have switched: a second press acts on the new state
  const toggleMic = async () => {
    setMicSwitching(true);
    const next = !micOn;
    try {
      await room.localParticipant.setMicrophoneEnabled(next);
      setMicOn(next);
    } catch (error) {
      setProblem(describe(error));
    } finally {
      setMicSwitching(false);
    }
  };

  // what is being said now, until it is final (and stored)
  const live: LiveLine[] = transcriptions
    .filter((t) => t.text.trim() !== "" && t.streamInfo.attributes?.[FINAL] !== "true")
    .slice(-2)
    .map((t) => ({
      id: t.streamInfo.id,
      role: t.participantInfo.identity === identity ? "user" : "assistant",
      text: t.text,
    }));

  return (
    <div className="app">
      <Sidebar
        chats={chats}
        current={chatId}
        onOpen={(chat) => void act(() => control.resumeChat(chat.id))}
        onRename={(chat, name) => act(() => control.renameChat(chat.id, name))}
        onDelete={(chat) => act(() => control.deleteChat(chat.id))}
      />
      <main className="main">
        <header className="bar">
          <span className="status" data-testid="connection" data-state={connection}>
            {connection}
          </span>
          <span className="agent-state" data-testid="agent-state">
            agent {agentState}
          </span>
          <NewChatButton control={control} onDone={changed} />
          <EraseButton control={control} onDone={changed} onProblem={setProblem} />
          <button type="button" disabled={micSwitching} onClick={() => void toggleMic()} data-testid="mic">
            {micOn ? "Mute" : "Unmute"}
          </button>
          <button type="button" onClick={() => void room.disconnect()} data-testid="hang-up">
            Hang up
          </button>
        </header>
        {agent === "reconnecting" && (
          <p className="notice" role="status" data-testid="agent-status" data-state={agent}>
            The agent was cut off. Another is on its way, with your conversation.
          </p>
        )}
        {agent === "resumed" && (
          <p className="notice" role="status" data-testid="agent-status" data-state={agent}>
            The agent is back, and carries on where you were.
          </p>
        )}
        {problem !== null && (
          <p className="error" role="alert">
            {problem}
          </p>
        )}
        <Transcript title={opened.title} messages={opened.messages} live={live} chatId={chatId} />
      </main>
    </div>
  );
}
