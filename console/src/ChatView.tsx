// One chat: its header, export, rename and delete (admin tokens only: the API says 403
// otherwise, and the page shows it), the prosody plot, and the transcript.
import { useEffect, useState } from "react";

import { ApiError, type Chat, download, getChat, remove, rename, when } from "./api";
import { ProsodyView } from "./ProsodyView";
import { Transcript } from "./Transcript";

interface Props {
  chatId: string;
  onChanged: () => void;
  onDeleted: () => void;
}

function refusal(e: unknown): string {
  if (e instanceof ApiError && e.status === 403) return "Not allowed with a read-only token.";
  return e instanceof Error ? e.message : String(e);
}

export function ChatView({ chatId, onChanged, onDeleted }: Props) {
  const [chat, setChat] = useState<Chat | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [seq, setSeq] = useState<number | null>(null); // the message picked in the plot
  // The transcript's first page is on screen: only then is the plot asked for, so that a long
  // chat's thousands of points never stand between the reader and its first lines.
  const [shown, setShown] = useState(false);

  useEffect(() => {
    let live = true;
    getChat(chatId)
      .then((found) => live && setChat(found))
      .catch((e: unknown) => live && setError(refusal(e)));
    return () => {
      live = false;
    };
  }, [chatId]);

  if (chat === null && error !== null) return <section className="chat">{error}</section>;
  // the transcript is asked for beside the chat, not after it
  const transcript = (
    <Transcript chatId={chatId} total={chat?.message_count ?? null} picked={seq} onPick={setSeq} onShown={setShown} />
  );
  if (chat === null) {
    return (
      <section className="chat" aria-label="Chat">
        <header>Loading…</header>
        {transcript}
      </section>
    );
  }
  return (
    <section className="chat" aria-label="Chat">
      <header>
        <h2>{chat.title ?? "Untitled chat"}</h2>
        <p>
          {chat.owner} · {chat.status}
          {chat.end_reason !== null && ` (${chat.end_reason})`} · {chat.message_count} messages · started{" "}
          {when(chat.created_at)}
        </p>
        <div className="actions">
          {(["md", "json", "jsonl"] as const).map((format) => (
            <button
              key={format}
              type="button"
              onClick={() => void download(chat.id, format).catch((e: unknown) => setError(refusal(e)))}
            >
              Export {format}
            </button>
          ))}
          <button
            type="button"
            onClick={() => {
              const title = window.prompt("New title", chat.title ?? "");
              if (title === null || title.trim() === "") return;
              rename(chat.id, title.trim())
                .then((renamed) => {
                  setChat(renamed);
                  setError(null);
                  onChanged();
                })
                .catch((e: unknown) => setError(refusal(e)));
            }}
          >
            Rename
          </button>
          <button
            type="button"
            className="danger"
            onClick={() => {
              if (!window.confirm("Delete this chat and all its messages?")) return;
              remove(chat.id)
                .then(() => {
                  onChanged();
                  onDeleted();
                })
                .catch((e: unknown) => setError(refusal(e)));
            }}
          >
            Delete
          </button>
        </div>
        {error !== null && <p role="alert">{error}</p>}
      </header>
      {shown ? (
        <ProsodyView chatId={chat.id} picked={seq} onPick={setSeq} />
      ) : (
        <div className="prosody">Loading prosody…</div>
      )}
      {transcript}
    </section>
  );
}
