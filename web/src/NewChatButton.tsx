import { type AgentControl, ControlError } from "@voxkeep/client";
import { useRef, useState } from "react";

/** New Chat: saves the current conversation and starts a fresh one. Disabled while it works
 * (a second press does nothing), with the error and a Retry when it fails. */
export function NewChatButton({ control, onDone }: { control: AgentControl; onDone: () => void }) {
  const [pending, setPending] = useState(false);
  const [failure, setFailure] = useState<ControlError | null>(null);
  const busy = useRef(false); // a press in the same tick as another sees this before a render

  // Retry sends the failed request again under its id: if the agent did act on it after all
  // (a reply lost to a timeout), it answers again without starting a second chat
  const start = async (again: ControlError | null) => {
    if (busy.current) return;
    busy.current = true;
    setPending(true);
    setFailure(null);
    try {
      await control.newChat({ requestId: again?.requestId ?? null });
      onDone();
    } catch (error) {
      setFailure(error instanceof ControlError ? error : new ControlError("internal", String(error)));
    } finally {
      busy.current = false;
      setPending(false);
    }
  };

  return (
    <span className="new-chat">
      <button type="button" disabled={pending} aria-busy={pending} onClick={() => void start(null)} data-testid="new-chat">
        {pending ? "Saving…" : "New Chat"}
      </button>
      {failure !== null && (
        <span className="error" role="alert" data-testid="new-chat-error">
          New Chat failed ({failure.code}).{" "}
          <button type="button" disabled={pending} onClick={() => void start(failure)} data-testid="new-chat-retry">
            Retry
          </button>
        </span>
      )}
    </span>
  );
}
