/**
 * The parts of a `livekit-client` `Room` the client uses. Pass the `Room` itself; tests pass a
 * stand-in of the same shape.
 */

export const RPC_METHOD = "voxkeep.control";
export const DEFAULT_TOPIC = "voxkeep.control";
/** The agent participant's attribute that names the current chat. */
export const CHAT_ATTRIBUTE = "voxkeep.chat_id";

export interface ControlParticipant {
  readonly identity: string;
  readonly attributes: Readonly<Record<string, string>>;
  /** The participant's kind is `AGENT`. */
  readonly isAgent: boolean;
}

export interface RpcCall {
  destinationIdentity: string;
  method: string;
  payload: string;
  responseTimeout?: number;
}

export interface DataOptions {
  reliable?: boolean;
  topic?: string;
  destinationIdentities?: string[];
}

export type DataListener = (
  payload: Uint8Array,
  participant?: ControlParticipant,
  kind?: unknown,
  topic?: string,
) => void;
export type AttributesListener = (
  changed: Record<string, string>,
  participant: ControlParticipant,
) => void;
export type ParticipantListener = (participant: ControlParticipant) => void;
export type DisconnectedListener = () => void;

export interface ControlRoom {
  readonly remoteParticipants: ReadonlyMap<string, ControlParticipant>;
  readonly localParticipant: {
    performRpc(call: RpcCall): Promise<string>;
    publishData(data: Uint8Array, options?: DataOptions): Promise<void>;
  };
  on(event: "dataReceived", listener: DataListener): unknown;
  on(event: "participantAttributesChanged", listener: AttributesListener): unknown;
  on(event: "participantConnected" | "participantDisconnected", listener: ParticipantListener): unknown;
  on(event: "disconnected", listener: DisconnectedListener): unknown;
  off(event: "dataReceived", listener: DataListener): unknown;
  off(event: "participantAttributesChanged", listener: AttributesListener): unknown;
  off(event: "participantConnected" | "participantDisconnected", listener: ParticipantListener): unknown;
  off(event: "disconnected", listener: DisconnectedListener): unknown;
}
