// The console: sign in with a token, then the chat list beside the open chat. The open chat is
// in the URL's hash (#chat_…), so a link to it can be shared between operators.
import { useEffect, useState } from "react";

import { ApiError, health, savedToken, saveToken } from "./api";
import { ChatList } from "./ChatList";
import { ChatView } from "./ChatView";

function openChat(): string | null {
  const id = decodeURIComponent(window.location.hash.slice(1));
  return id === "" ? null : id;
}

export function App() {
  const [signedIn, setSignedIn] = useState(savedToken() !== null);
  const [chatId, setChatId] = useState(openChat);
  const [changed, setChanged] = useState(0); // a rename or delete: the list reads again

  useEffect(() => {
    const follow = () => setChatId(openChat());
    window.addEventListener("hashchange", follow);
    return () => window.removeEventListener("hashchange", follow);
  }, []);

  if (!signedIn) return <SignIn onDone={() => setSignedIn(true)} />;
  return (
    <div className="console">
      <header>
        <h1>Agent console</h1>
        <button
          type="button"
          onClick={() => {
            saveToken(null);
            setSignedIn(false);
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <ChatList selected={chatId} changed={changed} />
        {chatId === null ? (
          <section className="empty">Pick a chat.</section>
        ) : (
          <ChatView
            key={chatId}
            chatId={chatId}
            onChanged={() => setChanged((n) => n + 1)}
            onDeleted={() => {
              window.location.hash = "";
            }}
          />
        )}
      </main>
    </div>
  );
}

function SignIn({ onDone }: { onDone: () => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      className="sign-in"
      onSubmit={(event) => {
        event.preventDefault();
        saveToken(token.trim());
        health()
          .then(onDone)
          .catch((e: unknown) => {
            saveToken(null);
            setError(e instanceof ApiError && e.status === 401 ? "That token is not known." : String(e));
          });
      }}
    >
      <h1>Agent console</h1>
      <label>
        Token
        <input
          type="password"
          autoComplete="off"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          aria-label="Token"
        />
      </label>
      <button type="submit" disabled={token.trim() === ""}>
        Sign in
      </button>
      {error !== null && <p role="alert">{error}</p>}
    </form>
  );
}
