import {
  SecAggClient,
  SecAggServer,
  type AdvertiseKeysMessage,
  type ForwardedSharesMessage,
  type KeyDirectoryMessage,
  type MaskInputOptions,
  type MaskedInputMessage,
  type SecAggConfig,
  type SecAggResult,
  type ShareKeysMessage,
  type UnmaskRequestMessage,
  type UnmaskResponseMessage,
} from './protocol.ts';
import { packMaskedInput } from './word-packing.ts';

/**
 * An in-memory round: every client and the server in one process, messages
 * passed by reference. It is the reference for the order of calls a transport
 * makes, and what the tests and bench/secagg.ts drive.
 */

/** Who vanishes when: a participant listed at a step sends nothing from that step on. */
export interface Dropouts {
  readonly beforeAdvertise?: readonly number[];
  readonly beforeShareKeys?: readonly number[];
  readonly beforeMaskedInput?: readonly number[];
  readonly beforeUnmask?: readonly number[];
}

export interface Transcript {
  readonly advertise: AdvertiseKeysMessage[];
  directory?: KeyDirectoryMessage;
  readonly shareKeys: ShareKeysMessage[];
  readonly forwarded: ForwardedSharesMessage[];
  readonly masked: MaskedInputMessage[];
  request?: UnmaskRequestMessage;
  readonly unmask: UnmaskResponseMessage[];
}

export interface Costs {
  /** Per client: milliseconds of its own computation over all steps. */
  readonly clientMs: Map<number, number>;
  /** Per client: payload bytes sent (see payloadBytes). */
  readonly clientBytesSent: Map<number, number>;
  readonly clientBytesReceived: Map<number, number>;
  /** Server computation, all steps. */
  serverMs: number;
}

export interface LocalRound {
  readonly result: SecAggResult;
  readonly transcript: Transcript;
  readonly server: SecAggServer;
  readonly costs: Costs;
}

/**
 * Bytes of a message in a compact binary encoding: typed arrays as raw bytes,
 * every number as 4 bytes, arrays and objects as their contents.
 */
export function payloadBytes(message: unknown): number {
  if (typeof message === 'number') return 4;
  if (ArrayBuffer.isView(message)) return message.byteLength;
  if (Array.isArray(message)) return message.reduce((n: number, item: unknown) => n + payloadBytes(item), 0);
  if (typeof message === 'object' && message !== null)
    return Object.values(message).reduce((n: number, v: unknown) => n + payloadBytes(v), 0);
  return 0;
}

export async function runLocalRound(
  config: SecAggConfig,
  updateOf: (index: number) => Float32Array,
  options: { readonly dropouts?: Dropouts; readonly maskOptions?: (index: number) => MaskInputOptions } = {},
): Promise<LocalRound> {
  const drop = options.dropouts ?? {};
  const transcript: Transcript = { advertise: [], shareKeys: [], forwarded: [], masked: [], unmask: [] };
  const costs: Costs = { clientMs: new Map(), clientBytesSent: new Map(), clientBytesReceived: new Map(), serverMs: 0 };
  const timeClient = async <T>(index: number, body: () => Promise<T> | T): Promise<T> => {
    const start = performance.now();
    const out = await body();
    costs.clientMs.set(index, (costs.clientMs.get(index) ?? 0) + performance.now() - start);
    return out;
  };
  const timeServer = async <T>(body: () => Promise<T> | T): Promise<T> => {
    const start = performance.now();
    const out = await body();
    costs.serverMs += performance.now() - start;
    return out;
  };
  const sent = (index: number, message: unknown): void =>
    void costs.clientBytesSent.set(index, (costs.clientBytesSent.get(index) ?? 0) + payloadBytes(message));
  const received = (index: number, message: unknown): void =>
    void costs.clientBytesReceived.set(index, (costs.clientBytesReceived.get(index) ?? 0) + payloadBytes(message));

  const server = await SecAggServer.create(config);
  const clients = new Map<number, SecAggClient>();
  for (let i = 1; i <= config.participants; i++) {
    if (drop.beforeAdvertise?.includes(i)) continue;
    clients.set(i, await timeClient(i, () => SecAggClient.create(config, i)));
  }
  const alive = (gone: readonly number[] | undefined): SecAggClient[] => [...clients.values()].filter((c) => !gone?.includes(c.index));

  for (const client of alive(drop.beforeShareKeys)) {
    const message = await timeClient(client.index, () => client.advertise());
    sent(client.index, message);
    transcript.advertise.push(message);
    await timeServer(() => server.receiveAdvertise(message));
  }
  const directory = await timeServer(() => server.closeAdvertise());
  transcript.directory = directory;

  for (const client of alive(drop.beforeShareKeys)) {
    received(client.index, directory);
    const message = await timeClient(client.index, () => client.shareKeys(directory));
    sent(client.index, message);
    transcript.shareKeys.push(message);
    await timeServer(() => server.receiveShareKeys(message));
  }
  const forwarded = await timeServer(() => server.closeShareKeys());
  transcript.forwarded.push(...forwarded);

  const senders = alive([...(drop.beforeShareKeys ?? []), ...(drop.beforeMaskedInput ?? []), ...(drop.beforeUnmask ?? [])]);
  const toMask = alive([...(drop.beforeShareKeys ?? []), ...(drop.beforeMaskedInput ?? [])]);
  for (const client of toMask) {
    const inbox = forwarded.find((f) => f.to === client.index);
    if (inbox === undefined) continue;
    received(client.index, inbox);
    const update = updateOf(client.index);
    const message = await timeClient(client.index, () => client.maskInput(inbox, update, options.maskOptions?.(client.index)));
    // What travels: the words packed b bits each.
    sent(client.index, packMaskedInput(message, config));
    transcript.masked.push(message);
    await timeServer(() => server.receiveMaskedInput(message));
  }
  const request = await timeServer(() => server.closeMaskedInput());
  transcript.request = request;

  for (const client of senders) {
    if (!request.survivors.includes(client.index)) continue;
    received(client.index, request);
    const message = await timeClient(client.index, () => client.unmask(request));
    sent(client.index, message);
    transcript.unmask.push(message);
    await timeServer(() => server.receiveUnmask(message));
  }
  const result = await timeServer(() => server.finish());
  return { result, transcript, server, costs };
}
