import { type AgentControl, ControlError } from "@voxkeep/client";
import { useState } from "react";

interface Offer {
  confirm: string;
  count: number;
}

/** Erase my history: the agent first says how many chats would go and gives a one-use token
 * (docs/control.md, erase_me); the caller confirms, or lets it lapse. The call goes on in a new
 * chat. */
export function EraseButton({
  control,
  onDone,
  onProblem,
}: {
  control: AgentControl;
  onDone: () => void;
  onProblem: (text: string) => void;
}) {
  const [offer, setOffer] = useState<Offer | null>(null);
  const [pending, setPending] = useState(false);

  const run = async (action: () => Promise<void>) => {
    setPending(true);
    try {
      await action();
    } catch (error) {
      setOffer(null);
      onProblem(error instanceof ControlError ? `Erase failed (${error.code}).` : String(error));
    } finally {
      setPending(false);
    }
  };

  if (offer === null) {
    return (
      <button
        type="button"
        disabled={pending}
        data-testid="erase"
        onClick={() =>
          void run(async () => {
            const asked = await control.eraseMe();
            if (asked.confirm == null) throw new Error("the agent gave no confirmation token");
            setOffer({ confirm: asked.confirm, count: asked.chat_count });
          })
        }
      >
        Erase my history
      </button>
    );
  }
  return (
    <span className="confirm" data-testid="erase-confirm">
      Erase {offer.count} {offer.count === 1 ? "chat" : "chats"} for good?{" "}
      <button
        type="button"
        className="danger"
        disabled={pending}
        onClick={() =>
          void run(async () => {
            await control.confirmErase(offer.confirm);
            setOffer(null);
            onDone();
          })
        }
      >
        Erase
      </button>
      <button
        type="button"
        disabled={pending}
        onClick={() => {
          setOffer(null);
        }}
      >
        Cancel
      </button>
    </span>
  );
}
