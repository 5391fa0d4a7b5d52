import { RoomAudioRenderer, RoomContext } from "@livekit/components-react";
import { AgentControl, type ChatMessage, type ChatSummary } from "@voxkeep/client";
import { type AudioCaptureOptions, Room, RoomEvent } from "livekit-client";
import { useEffect, useState } from "react";

import * as api from "./api";
import { InCall } from "./InCall";
import { Sidebar } from "./Sidebar";
import { Transcript } from "./Transcript";
import { useIdentity } from "./useIdentity";

/** Microphone capture: the browser's voice processing, unless `?mic=raw` (a file-fed or
 * studio microphone, whose sound the processing would flatten). */
function micOptions(): AudioCaptureOptions {
  const raw = new URLSearchParams(window.location.search).get("mic") === "raw";
  return raw
    ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false, voiceIsolation: false }
    : {};
}

interface Call {
  room: Room;
  control: AgentControl;
}

export function App() {
  const identity = useIdentity();
  const [call, setCall] = useState<Call | null>(null);
  const [joining, setJoining] = useState(false);
  const [joinError, setJoinError] = useState<string | null>(null);
  const [lastChatId, setLastChatId] = useState<string | null>(null);
  const [chats, setChats] = useState<ChatSummary[]>([]);
  const [viewing, setViewing] = useState<{ chat: ChatSummary; messages: ChatMessage[] } | null>(null);

  useEffect(() => {
    if (call !== null) return; // in a call, the agent lists the chats
    let current = true;
    api.chats(identity).then(
      (list) => {
        if (current) setChats(list);
      },
      () => undefined, // the list is shown once the app server answers
    );
    return () => {
      current = false;
    };
  }, [call, identity]);

  const join = async (resumeChatId?: string) => {
    setJoining(true);
    setJoinError(null);
    const room = new Room({ publishDefaults: { stopMicTrackOnMute: true }, audioCaptureDefaults: micOptions() });
    try {
      const grant = await api.token(identity, resumeChatId);
      await room.connect(grant.url, grant.token);
      await room.localParticipant.setMicrophoneEnabled(true);
      const control = new AgentControl(room);
      room.on(RoomEvent.Disconnected, () => {
        control.close();
        setLastChatId(control.chatId);
        setCall(null);
      });
      setViewing(null);
      setCall({ room, control });
    } catch (error) {
      await room.disconnect();
      setJoinError(error instanceof Error ? error.message : String(error));
    } finally {
      setJoining(false);
    }
  };

  const view = async (chat: ChatSummary) => {
    const stored = await api.chat(identity, chat.id);
    setViewing({ chat: stored.chat, messages: [...stored.messages].sort((a, b) => a.seq - b.seq) });
  };

  if (call !== null) {
    return (
      <RoomContext.Provider value={call.room}>
        <InCall room={call.room} control={call.control} identity={identity} />
        <RoomAudioRenderer />
      </RoomContext.Provider>
    );
  }

  const resumable = viewing?.chat.id ?? lastChatId;
  return (
    <div className="app">
      <Sidebar chats={chats} current={viewing?.chat.id ?? lastChatId} onOpen={(chat) => void view(chat)} />
      <main className="main">
        <header className="bar">
          <span className="status" data-testid="connection">
            disconnected
          </span>
          <span className="identity">as {identity}</span>
          <button type="button" disabled={joining} onClick={() => void join()} data-testid="call">
            {joining ? "Connecting…" : "Call"}
          </button>
          {resumable !== null && (
            <button type="button" disabled={joining} onClick={() => void join(resumable)} data-testid="resume">
              Resume
            </button>
          )}
        </header>
        {joinError !== null && (
          <p className="error" role="alert">
            Could not join: {joinError}
          </p>
        )}
        {viewing !== null ? (
          <Transcript title={viewing.chat.title} messages={viewing.messages} live={[]} />
        ) : (
          <LastWords identity={identity} chatId={lastChatId} />
        )}
      </main>
    </div>
  );
}

/** After a hang-up, the chat the call was in stays on screen. */
function LastWords({ identity, chatId }: { identity: string; chatId: string | null }) {
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  useEffect(() => {
    if (chatId === null) return;
    api
      .chat(identity, chatId)
      .then((stored) => {
        setMessages([...stored.messages].sort((a, b) => a.seq - b.seq));
      })
      .catch(() => undefined); // a chat dropped for being empty has nothing to show
  }, [identity, chatId]);
  if (chatId === null) return <p className="hint">Press Call and talk to the agent.</p>;
  return <Transcript title={null} messages={messages} live={[]} />;
}
