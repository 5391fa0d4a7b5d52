// The caller's prosody over the chat: pitch, loudness and rate of each utterance as distances
// from their own baseline (z-scores; 0 is how this caller usually sounds), drawn with uPlot.
// Clicking a point picks that utterance, whose figures the transcript then shows.
import { useEffect, useRef, useState } from "react";
import uPlot from "uplot";

import { type ProsodyPoint, prosody } from "./api";

interface Props {
  chatId: string;
  picked: number | null;
  onPick: (seq: number) => void;
}

export function ProsodyView({ chatId, picked, onPick }: Props) {
  const [points, setPoints] = useState<ProsodyPoint[] | null>(null);
  const [measured, setMeasured] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  const pick = useRef(onPick);
  useEffect(() => {
    pick.current = onPick;
  }, [onPick]);

  useEffect(() => {
    let live = true;
    prosody(chatId)
      .then((found) => {
        if (!live) return;
        setPoints(found.points);
        setMeasured(found.measured);
      })
      .catch(() => live && setPoints([]));
    return () => {
      live = false;
    };
  }, [chatId]);

  useEffect(() => {
    const target = box.current;
    if (target === null || points === null || points.length === 0) return;
    const seqs = points.map((p) => p.seq);
    const series = (key: "pitch_z" | "loudness_z" | "rate_z") => points.map((p) => p[key]);
    const plot = new uPlot(
      {
        width: Math.max(320, target.clientWidth),
        height: 220,
        scales: { x: { time: false } },
        axes: [
          { label: "message", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] },
          { label: "σ from baseline", size: 60 },
        ],
        series: [
          { label: "message" },
          { label: "pitch", stroke: "#2563eb", width: 2, points: { show: true } },
          { label: "loudness", stroke: "#dc2626", width: 2, points: { show: true } },
          { label: "rate", stroke: "#16a34a", width: 2, points: { show: true } },
        ],
        cursor: { points: { size: 8 } },
        hooks: {
          setCursor: [
            (u) => {
              const index = u.cursor.idx;
              if (index !== null && index !== undefined && u.cursor.event?.type === "mouseup") {
                const seq = seqs[index];
                if (seq !== undefined) pick.current(seq);
              }
            },
          ],
        },
      },
      [seqs, series("pitch_z"), series("loudness_z"), series("rate_z")],
      target,
    );
    return () => plot.destroy();
  }, [points]);

  if (points === null) return <div className="prosody">Loading prosody…</div>;
  if (!measured) return <div className="prosody">The caller switched prosody off.</div>;
  if (points.length === 0) return <div className="prosody">No prosody in this chat.</div>;
  return (
    <figure className="prosody" aria-label="Prosody plot">
      <div ref={box} />
      <figcaption>
        {points.length} utterances{picked !== null ? ` · message ${picked} picked` : " · click a point"}
      </figcaption>
    </figure>
  );
}
