import type { ChatMessage, Prosody } from "@voxkeep/client";

export interface LiveLine {
  id: string;
  role: "user" | "assistant";
  text: string;
}

interface Props {
  title: string | null;
  messages: ChatMessage[];
  /** What is being said now, not yet stored. */
  live: LiveLine[];
  chatId?: string | null;
}

/** The conversation: the stored messages in order, each of the caller's with its prosody. */
export function Transcript({ title, messages, live, chatId = null }: Props) {
  const said = messages.filter((m) => (m.role === "user" || m.role === "assistant") && m.content);
  return (
    <section className="transcript" data-testid="transcript" data-chat-id={chatId ?? undefined}>
      {title !== null && <h1>{title}</h1>}
      <ol>
        {said.map((m) => (
          <li key={m.seq} className={`line ${m.role}`} data-role={m.role}>
            <span className="who">{m.role === "user" ? "You" : "Agent"}</span>
            <span className="text">{m.content}</span>
            {m.interrupted && <span className="tag">interrupted</span>}
            {m.role === "user" && m.prosody !== null && <ProsodyBadges prosody={m.prosody} />}
          </li>
        ))}
        {live.map((line) => (
          <li key={line.id} className={`line ${line.role} live`} data-role={line.role} data-live="true">
            <span className="who">{line.role === "user" ? "You" : "Agent"}</span>
            <span className="text">{line.text}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}

const MEASURES = [
  { key: "pitch_z", label: "pitch", high: "higher", low: "lower" },
  { key: "loudness_z", label: "loudness", high: "louder", low: "softer" },
  { key: "rate_z", label: "rate", high: "faster", low: "slower" },
] as const;

/** Pitch, loudness and rate against the caller's own baseline, at a glance: a bar from −3σ to
 * +3σ for each, and the words for it. */
function ProsodyBadges({ prosody }: { prosody: Prosody }) {
  const relative = prosody.relative;
  if (relative === null || relative === undefined) return null;
  return (
    <span className="prosody" data-testid="prosody" title={`against ${relative.baseline_n} earlier utterances`}>
      {MEASURES.map(({ key, label, high, low }) => {
        const z = relative[key];
        if (z === null) return null;
        const words = Math.abs(z) < 0.5 ? "as usual" : z > 0 ? high : low;
        const width = Math.min(Math.abs(z), 3) / 3;
        return (
          <span key={key} className="measure" data-measure={label} data-z={z}>
            <span className="label">{label}</span>
            <span className="bar" aria-hidden="true">
              <span className={z >= 0 ? "fill up" : "fill down"} style={{ width: `${(width * 50).toFixed(0)}%` }} />
            </span>
            <span className="words">
              {words} ({z > 0 ? "+" : ""}
              {z.toFixed(1)}σ)
            </span>
          </span>
        );
      })}
    </span>
  );
}
