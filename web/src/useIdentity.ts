import { useState } from "react";

const KEY = "agent.identity";

/** Who the caller is: `?identity=` if given, else the one this browser keeps. */
export function useIdentity(): string {
  const [identity] = useState(() => {
    const given = new URLSearchParams(window.location.search).get("identity");
    const kept = window.localStorage.getItem(KEY);
    const chosen = given ?? kept ?? `caller-${crypto.randomUUID().slice(0, 8)}`;
    window.localStorage.setItem(KEY, chosen);
    return chosen;
  });
  return identity;
}
