// The transcript, a page of messages at a time: the first screen shows as soon as the first
// page arrives, and the next page loads as the reader scrolls near the end (a 10,000-message
// chat never renders what nobody looked at). Tool calls fold; interrupted turns are marked.
import { useCallback, useEffect, useRef, useState } from "react";

import { type Message, messages, when } from "./api";

const FIRST_PAGE = 50; // about a screen, so that a long chat's first lines show as soon as a short one's
const PAGE = 200;

interface Props {
  chatId: string;
  total: number | null; // (not known yet while the chat loads beside the first page)
  picked: number | null;
  onPick: (seq: number) => void;
  onShown: (shown: true) => void; // the first page is on screen
}

export function Transcript({ chatId, total, picked, onPick, onShown }: Props) {
  const [loaded, setLoaded] = useState<Message[]>([]);
  const [next, setNext] = useState<number | null>(0);
  const [error, setError] = useState<string | null>(null);
  const loading = useRef(false);
  const end = useRef<HTMLDivElement>(null);

  const loadMore = useCallback(() => {
    if (next === null || loading.current) return;
    loading.current = true;
    messages(chatId, next, next === 0 ? FIRST_PAGE : PAGE)
      .then((page) => {
        setLoaded((known) => [...known, ...page.messages]);
        setNext(page.next_after_seq);
      })
      .catch((e: unknown) => setError(String(e)))
      .finally(() => {
        loading.current = false;
      });
  }, [chatId, next]);

  const first = loaded.length > 0 || next === null;
  useEffect(() => {
    if (first) onShown(true);
  }, [first, onShown]);

  useEffect(() => {
    const sentinel = end.current;
    if (sentinel === null) return;
    const watcher = new IntersectionObserver((seen) => {
      if (seen.some((entry) => entry.isIntersecting)) loadMore();
    }, { rootMargin: "600px" });
    watcher.observe(sentinel);
    return () => watcher.disconnect();
  }, [loadMore]);

  return (
    <ol className="transcript" aria-label="Transcript">
      {loaded.map((m) => (
        <li
          key={m.id}
          className={`${m.role}${m.interrupted ? " interrupted" : ""}${m.seq === picked ? " picked" : ""}`}
          onClick={() => m.prosody !== null && onPick(m.seq)}
        >
          <span className="who">{m.role === "tool" ? (m.tool_name ?? "tool") : m.role}</span>
          <time>{when(m.created_at)}</time>
          {m.role === "tool" ? (
            <details>
              <summary>{m.tool_name ?? "tool"} call</summary>
              <pre>{JSON.stringify({ call: m.tool_call, result: m.tool_result }, null, 2)}</pre>
            </details>
          ) : (
            <p>{m.content}</p>
          )}
          {m.interrupted && <em className="cut">interrupted</em>}
          {m.seq === picked && m.prosody !== null && <Figures message={m} />}
        </li>
      ))}
      <div ref={end} className="sentinel">
        {error ?? (next !== null ? `Loading… (${loaded.length} of ${total ?? "…"})` : null)}
      </div>
    </ol>
  );
}

function Figures({ message }: { message: Message }) {
  const p = message.prosody;
  if (p === null) return null;
  const z = (value: number | undefined) => (value === undefined ? "–" : `${value >= 0 ? "+" : ""}${value.toFixed(2)}σ`);
  return (
    <dl className="figures" aria-label="Prosody">
      <dt>pitch</dt>
      <dd>
        {p.pitch?.median_hz?.toFixed(0) ?? "–"} Hz ({z(p.relative?.pitch_z)})
      </dd>
      <dt>loudness</dt>
      <dd>
        {p.loudness?.mean_db?.toFixed(1) ?? "–"} dB ({z(p.relative?.loudness_z)})
      </dd>
      <dt>rate</dt>
      <dd>
        {p.rate?.words_per_s?.toFixed(1) ?? "–"} words/s ({z(p.relative?.rate_z)})
      </dd>
      <dt>pauses</dt>
      <dd>
        {p.pauses?.count ?? 0} ({p.pauses?.total_s?.toFixed(1) ?? "0.0"} s)
      </dd>
    </dl>
  );
}
