// The chat list: full-text search, owner, status and a date range; pages on by cursor.
import { useEffect, useState } from "react";

import { type Chat, type Filters, listChats, when } from "./api";

function day(value: string): number | undefined {
  return value === "" ? undefined : new Date(`${value}T00:00:00`).getTime() / 1000;
}

export function ChatList({ selected, changed }: { selected: string | null; changed: number }) {
  const [form, setForm] = useState({ q: "", owner: "", status: "", from: "", to: "" });
  const [filters, setFilters] = useState<Filters>({});
  const [chats, setChats] = useState<Chat[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    listChats(filters, null)
      .then((page) => {
        if (!live) return;
        setChats(page.chats);
        setCursor(page.next_cursor);
        setError(null);
      })
      .catch((e: unknown) => live && setError(String(e)));
    return () => {
      live = false;
    };
  }, [filters, changed]);

  const more = () => {
    listChats(filters, cursor)
      .then((page) => {
        setChats((known) => [...known, ...page.chats]);
        setCursor(page.next_cursor);
      })
      .catch((e: unknown) => setError(String(e)));
  };

  const to = day(form.to);
  return (
    <nav className="chat-list">
      <form
        onSubmit={(event) => {
          event.preventDefault();
          setFilters({
            q: form.q.trim() || undefined,
            owner: form.owner.trim() || undefined,
            status: form.status || undefined,
            createdAfter: day(form.from),
            createdBefore: to === undefined ? undefined : to + 86_400,
          });
        }}
      >
        <input
          type="search"
          placeholder="Search what was said"
          aria-label="Search"
          value={form.q}
          onChange={(e) => setForm({ ...form, q: e.target.value })}
        />
        <input
          placeholder="Owner"
          aria-label="Owner"
          value={form.owner}
          onChange={(e) => setForm({ ...form, owner: e.target.value })}
        />
        <select aria-label="Status" value={form.status} onChange={(e) => setForm({ ...form, status: e.target.value })}>
          <option value="">any status</option>
          <option value="active">active</option>
          <option value="closed">closed</option>
          <option value="interrupted">interrupted</option>
        </select>
        <label>
          from <input type="date" aria-label="From" value={form.from} onChange={(e) => setForm({ ...form, from: e.target.value })} />
        </label>
        <label>
          to <input type="date" aria-label="To" value={form.to} onChange={(e) => setForm({ ...form, to: e.target.value })} />
        </label>
        <button type="submit">Filter</button>
      </form>
      {error !== null && <p role="alert">{error}</p>}
      <ul>
        {chats.map((chat) => (
          <li key={chat.id} className={chat.id === selected ? "selected" : undefined}>
            <a href={`#${encodeURIComponent(chat.id)}`}>
              <strong>{chat.title ?? "Untitled chat"}</strong>
              <span>
                {chat.owner} · {chat.status} · {chat.message_count} messages
              </span>
              <time>{when(chat.updated_at)}</time>
            </a>
          </li>
        ))}
      </ul>
      {chats.length === 0 && error === null && <p className="none">No chats.</p>}
      {cursor !== null && (
        <button type="button" onClick={more}>
          More
        </button>
      )}
    </nav>
  );
}
