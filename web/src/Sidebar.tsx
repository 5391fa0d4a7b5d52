import type { ChatSummary } from "@voxkeep/client";
import { useState } from "react";

interface Props {
  chats: ChatSummary[];
  current: string | null;
  onOpen: (chat: ChatSummary) => void;
  /** Inline rename and delete; only while in a call (the agent does them). */
  onRename?: (chat: ChatSummary, title: string) => Promise<void>;
  onDelete?: (chat: ChatSummary) => Promise<void>;
}

const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/**
 * The caller's chats, newest first. The current chat is listed from its greeting on; a chat
 * nobody spoke in is dropped when the call leaves it, so it is not listed after that.
 */
export function Sidebar({ chats, current, onOpen, onRename, onDelete }: Props) {
  return (
    <nav className="sidebar" aria-label="Chats">
      <h2>Chats</h2>
      <ul data-testid="chat-list">
        {chats.map((chat) => (
          <ChatRow
            key={chat.id}
            chat={chat}
            current={chat.id === current}
            onOpen={onOpen}
            onRename={onRename}
            onDelete={onDelete}
          />
        ))}
      </ul>
      {chats.length === 0 && <p className="hint">No chats yet.</p>}
    </nav>
  );
}

function ChatRow({
  chat,
  current,
  onOpen,
  onRename,
  onDelete,
}: { chat: ChatSummary; current: boolean } & Omit<Props, "chats" | "current">) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(chat.title ?? "");
  const [confirming, setConfirming] = useState(false);
  const title = chat.title ?? (current ? "New chat" : "Untitled chat");

  if (editing && onRename !== undefined) {
    const save = async () => {
      setEditing(false);
      if (draft.trim() !== "" && draft !== chat.title) await onRename(chat, draft.trim());
    };
    return (
      <li className="chat editing">
        <form
          onSubmit={(event) => {
            event.preventDefault();
            void save();
          }}
        >
          <input
            aria-label="Chat title"
            value={draft}
            maxLength={100}
            autoFocus
            onChange={(event) => {
              setDraft(event.target.value);
            }}
            onKeyDown={(event) => {
              if (event.key === "Escape") setEditing(false);
            }}
          />
          <button type="submit">Save</button>
        </form>
      </li>
    );
  }

  return (
    <li className={current ? "chat current" : "chat"} data-chat-id={chat.id} aria-current={current}>
      <button
        type="button"
        className="open"
        onClick={() => {
          onOpen(chat);
        }}
      >
        <span className="title">{title}</span>
        <span className="meta">
          {when.format(new Date(chat.updated_at * 1000))} · {chat.message_count}{" "}
          {chat.message_count === 1 ? "message" : "messages"}
        </span>
      </button>
      {onRename !== undefined && (
        <button
          type="button"
          className="small"
          aria-label={`Rename ${title}`}
          onClick={() => {
            setDraft(chat.title ?? "");
            setEditing(true);
          }}
        >
          Rename
        </button>
      )}
      {onDelete !== undefined &&
        (confirming ? (
          <span className="confirm">
            Delete?{" "}
            <button type="button" className="small danger" onClick={() => void onDelete(chat)}>
              Yes, delete
            </button>
            <button
              type="button"
              className="small"
              onClick={() => {
                setConfirming(false);
              }}
            >
              Keep
            </button>
          </span>
        ) : (
          <button
            type="button"
            className="small"
            aria-label={`Delete ${title}`}
            onClick={() => {
              setConfirming(true);
            }}
          >
            Delete
          </button>
        ))}
    </li>
  );
}
