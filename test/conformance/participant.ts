import { randomBytes } from 'node:crypto';
import { io, type Socket } from 'socket.io-client';
import {
  addMask,
  ecdhPair,
  neighbourGraph,
  openShare,
  pairKey,
  quantize,
  randomFieldElement,
  sealShare,
  shamirSplit,
  toBytes32,
} from './secagg-primitives.ts';

/**
 * A protocol-v1 participant written only from docs/protocol.md: the FLWT
 * frames (§5), join/update (§3–4), clipping and noise (§10.1), the four
 * secure aggregation steps (§10.3), plain SGD on a dense model in the
 * weights layout of §5.2. It imports nothing from core/: node built-ins and
 * socket.io-client only. Loosely typed on purpose: everything it receives is
 * checked as the doc describes, nothing is trusted from shared types.
 */

type Json = Record<string, unknown>;
type AckResult = { ok: true; value: Json } | { ok: false; error: { code: string; message: string } };

export interface ConformanceOptions {
  /** Local examples to train on (the first ones of an iid shard). */
  readonly examples: { readonly x: Float32Array; readonly y: Uint8Array; readonly features: number };
  /** Test hook: leave (disconnect) once this round's forwarded shares arrived, before the masked input. */
  readonly dropAfterForwardedInRound?: number;
}

export interface RoundLog {
  readonly round: number;
  readonly secure: boolean;
  /** What was quantised (secure) or sent (plain): the update after clipping and noise. */
  readonly sent: Float32Array;
  readonly ack?: AckResult;
}

const MAGIC = 0x54574c46; // 'FLWT' read as u32 LE

export function encodeFrame(kind: 1 | 2, values: Float32Array): Buffer {
  const out = Buffer.alloc(16 + 4 * values.length);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt16LE(1, 4);
  out.writeUInt8(kind, 6);
  out.writeUInt8(1, 7);
  out.writeUInt32LE(values.length, 8);
  out.writeUInt32LE(0, 12);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i]!, 16 + 4 * i);
  return out;
}

/** §5.1's checks, with kind 1, on the weights a participant receives. */
export function decodeFrame(data: unknown, kind: 1 | 2, count: number): Float32Array {
  if (!(data instanceof Uint8Array) && !(data instanceof ArrayBuffer)) throw new Error('frame is not binary');
  const bytes = Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
  if (
    bytes.length < 16 ||
    bytes.readUInt32LE(0) !== MAGIC ||
    bytes.readUInt16LE(4) !== 1 ||
    bytes[6] !== kind ||
    bytes[7] !== 1 ||
    bytes.readUInt32LE(12) !== 0
  )
    throw new Error('BAD_FRAME');
  if (bytes.readUInt32LE(8) !== count || bytes.length !== 16 + 4 * count) throw new Error('WRONG_LENGTH');
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = bytes.readFloatLE(16 + 4 * i);
    if (!Number.isFinite(out[i])) throw new Error('NON_FINITE');
  }
  return out;
}

/** Plain SGD on a chain of dense layers (kernel [in, out] row-major, bias), ReLU between, softmax cross-entropy on the logits. */
function train(
  flat: Float32Array,
  shapes: readonly (readonly number[])[],
  data: ConformanceOptions['examples'],
  epochs: number,
  batchSize: number,
  learningRate: number,
): Float32Array {
  const w = Float32Array.from(flat);
  const layers: { k: number; b: number; nIn: number; nOut: number }[] = [];
  let offset = 0;
  for (let i = 0; i < shapes.length; i += 2) {
    const [nIn, nOut] = shapes[i] as [number, number];
    layers.push({ k: offset, b: offset + nIn * nOut, nIn, nOut });
    offset += nIn * nOut + nOut;
  }
  const n = data.y.length;
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let start = 0; start < n; start += batchSize) {
      const grad = new Float32Array(w.length);
      const end = Math.min(n, start + batchSize);
      for (let e = start; e < end; e++) {
        const acts: Float32Array[] = [data.x.subarray(e * data.features, (e + 1) * data.features)];
        for (const [li, L] of layers.entries()) {
          const input = acts[li]!;
          const out = new Float32Array(L.nOut);
          for (let o = 0; o < L.nOut; o++) out[o] = w[L.b + o]!;
          for (let i = 0; i < L.nIn; i++) {
            const a = input[i]!;
            if (a === 0) continue;
            const row = L.k + i * L.nOut;
            for (let o = 0; o < L.nOut; o++) out[o]! += a * w[row + o]!;
          }
          if (li < layers.length - 1) for (let o = 0; o < L.nOut; o++) out[o] = Math.max(0, out[o]!);
          acts.push(out);
        }
        const logits = acts[layers.length]!;
        const max = Math.max(...logits);
        const exp = logits.map((z) => Math.exp(z - max));
        const total = exp.reduce((s, v) => s + v, 0);
        let delta = exp.map((v) => v / total);
        delta[data.y[e]!]! -= 1;
        for (let li = layers.length - 1; li >= 0; li--) {
          const L = layers[li]!;
          const input = acts[li]!;
          const back = new Float32Array(L.nIn);
          for (let o = 0; o < L.nOut; o++) grad[L.b + o]! += delta[o]!;
          for (let i = 0; i < L.nIn; i++) {
            const a = input[i]!;
            const row = L.k + i * L.nOut;
            let s = 0;
            for (let o = 0; o < L.nOut; o++) {
              if (a !== 0) grad[row + o]! += a * delta[o]!;
              s += w[row + o]! * delta[o]!;
            }
            back[i] = li > 0 && input[i]! > 0 ? s : 0;
          }
          delta = back;
        }
      }
      const scale = learningRate / (end - start);
      for (let i = 0; i < w.length; i++) w[i]! -= scale * grad[i]!;
    }
  }
  const update = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) update[i] = w[i]! - flat[i]!;
  return update;
}

function gaussian(): number {
  const [a, b] = [randomBytes(4).readUInt32LE(0), randomBytes(4).readUInt32LE(0)];
  return Math.sqrt(-2 * Math.log((a + 1) / 2 ** 32)) * Math.cos((2 * Math.PI * b) / 2 ** 32);
}

/** §10.1: clip the whole update to clipNorm, then add N(0, noiseStd²) to every coordinate. */
function privatize(update: Float32Array, privacy: Json | undefined): Float32Array {
  if (!privacy) return update;
  const clipNorm = privacy.clipNorm as number;
  const noiseStd = privacy.noiseStd as number;
  let norm = 0;
  for (const v of update) norm += v * v;
  norm = Math.sqrt(norm);
  const out = Float32Array.from(update, (v) => (norm > clipNorm ? (v * clipNorm) / norm : v));
  if (noiseStd > 0) for (let i = 0; i < out.length; i++) out[i]! += noiseStd * gaussian();
  return out;
}

const bytesOf = (value: unknown): Buffer => {
  if (value instanceof ArrayBuffer) return Buffer.from(new Uint8Array(value));
  if (value instanceof Uint8Array) return Buffer.from(value);
  throw new Error('expected binary');
};
const pieces = (blob: unknown, count: number, size: number): Buffer[] => {
  const bytes = bytesOf(blob);
  if (bytes.length !== count * size) throw new Error(`blob of ${bytes.length} bytes is not ${count} pieces of ${size}`);
  return Array.from({ length: count }, (_, i) => bytes.subarray(i * size, (i + 1) * size));
};

export class ConformanceParticipant {
  readonly socket: Socket;
  readonly rounds: RoundLog[] = [];
  readonly refusals: string[] = [];
  id: string | undefined;
  task: Json | undefined;
  private readonly inbox = new Map<string, Json>();
  private readonly waiters = new Map<string, (message: Json) => void>();
  readonly done: Promise<Json>;

  constructor(
    url: string,
    private readonly options: ConformanceOptions,
  ) {
    this.socket = io(url, { transports: ['websocket'], reconnection: false });
    for (const event of ['secagg:keys', 'secagg:forwarded', 'secagg:unmask-request']) {
      this.socket.on(event, (message: Json) => this.deliver(`${event}#${String(message.round)}`, message));
    }
    this.socket.on('round:start', (message: Json) => {
      this.onRoundStart(message).catch((error: unknown) =>
        this.refusals.push(`round ${String(message.round)}: ${error instanceof Error ? error.message : String(error)}`),
      );
    });
    this.done = new Promise((resolve) => this.socket.on('federation:done', resolve));
  }

  private call(event: string, payload: Json): Promise<AckResult> {
    return this.socket.timeout(60_000).emitWithAck(event, payload) as Promise<AckResult>;
  }

  async join(): Promise<void> {
    const ack = await this.call('join', {
      protocolVersion: 1,
      client: { backend: 'conformance', numExamples: this.options.examples.y.length, platform: 'node (docs/protocol.md only)' },
    });
    if (!ack.ok) throw new Error(`join refused: ${ack.error.code} ${ack.error.message}`);
    this.id = ack.value.participantId as string;
    this.task = ack.value.task as Json;
  }

  stop(): void {
    this.socket.disconnect();
  }

  private deliver(key: string, message: Json): void {
    const waiter = this.waiters.get(key);
    if (waiter) {
      this.waiters.delete(key);
      waiter(message);
    } else this.inbox.set(key, message);
  }

  private next(event: string, round: number): Promise<Json> {
    const key = `${event}#${round}`;
    const held = this.inbox.get(key);
    if (held) {
      this.inbox.delete(key);
      return Promise.resolve(held);
    }
    return new Promise((resolve) => this.waiters.set(key, resolve));
  }

  private async onRoundStart(message: Json): Promise<void> {
    const task = this.task!;
    const round = message.round as number;
    const config = message.config as Json;
    const model = message.model as Json;
    const shapes = (task.weightShapes as { shape: number[] }[]).map((s) => s.shape);
    const weights = decodeFrame(model.weights, 1, task.paramCount as number);
    const trainUpdate = (): Float32Array =>
      privatize(
        train(weights, shapes, this.options.examples, config.epochs as number, config.batchSize as number, config.learningRate as number),
        config.privacy as Json | undefined,
      );
    if (message.secagg) return this.secureRound(round, message.secagg as Json, trainUpdate);
    const started = Date.now();
    const sent = trainUpdate();
    const ack = await this.call('update', {
      round,
      baseVersion: model.version,
      numExamples: this.options.examples.y.length,
      trainMs: Date.now() - started,
      update: encodeFrame(2, sent),
    });
    this.rounds.push({ round, secure: false, sent, ack });
  }

  private async send(event: string, payload: Json): Promise<void> {
    const ack = await this.call(event, payload);
    if (!ack.ok) throw new Error(`${event} refused: ${ack.error.code} ${ack.error.message}`);
  }

  /** §10.3.4, step by step. */
  private async secureRound(round: number, info: Json, trainUpdate: () => Float32Array): Promise<void> {
    const config = info.config as Json;
    const u = info.index as number;
    const n = config.participants as number;
    const t = config.threshold as number;
    const length = config.vectorLength as number;
    const quantization = config.quantization as { clipRange: number; quantizationRange: number };
    if (config.round !== round) throw new Error('secagg config names another round');
    const graph = neighbourGraph(n, config.neighbours as number | 'all', bytesOf(config.roundSeed));
    const neighbours = graph.get(u)!;

    // Step 0: two fresh P-256 pairs.
    const encryption = ecdhPair();
    const masking = ecdhPair();
    await this.send('secagg:advertise', { round, from: u, encryptionKey: encryption.publicKey, maskingKey: masking.publicKey });

    // Directory: U1, with our own keys unchanged.
    const keys = await this.next('secagg:keys', round);
    const indices = keys.indices as number[];
    const encKeys = pieces(keys.encryptionKeys, indices.length, 65);
    const maskKeys = pieces(keys.maskingKeys, indices.length, 65);
    const peers = new Map<number, { enc: Buffer; mask: Buffer }>();
    indices.forEach((v, i) => {
      if (v === u) {
        if (!encKeys[i]!.equals(encryption.publicKey) || !maskKeys[i]!.equals(masking.publicKey))
          throw new Error('the directory changed my keys');
      } else if (neighbours.includes(v)) peers.set(v, { enc: encKeys[i]!, mask: maskKeys[i]! });
    });
    if (!indices.includes(u)) throw new Error('the directory does not list me');

    // Step 1: share b_u and the masking scalar among me and my live neighbours.
    const holders = [u, ...[...peers.keys()].sort((a, b) => a - b)];
    if (holders.length < t) throw new Error(`${holders.length} share holders, threshold ${t}`);
    const selfSeed = toBytes32(randomFieldElement());
    const selfShares = shamirSplit(selfSeed, holders, t);
    const keyShares = shamirSplit(masking.privateScalar, holders, t);
    const held = new Map<number, { self: Buffer; key: Buffer }>([[u, { self: selfShares.get(u)!, key: keyShares.get(u)! }]]);
    const to = holders.slice(1);
    const ciphertexts = to.map((v) => {
      const key = pairKey(encryption.agree(peers.get(v)!.enc), 'fedbrowser/secagg/v1/share-encryption', round, u, v);
      return sealShare(key, Buffer.concat([selfShares.get(v)!, keyShares.get(v)!]), round, u, v);
    });
    await this.send('secagg:shares', { round, from: u, to, ciphertexts: Buffer.concat(ciphertexts) });

    // Forwarded shares: whom the input is masked with.
    const forwarded = await this.next('secagg:forwarded', round);
    if (forwarded.to !== u) throw new Error('shares for someone else');
    const from = forwarded.from as number[];
    const sealed = pieces(forwarded.ciphertexts, from.length, 92);
    from.forEach((v, i) => {
      const peer = peers.get(v);
      if (!peer || held.has(v)) throw new Error(`unexpected shares from ${v}`);
      const plain = openShare(
        pairKey(encryption.agree(peer.enc), 'fedbrowser/secagg/v1/share-encryption', round, u, v),
        sealed[i]!,
        round,
        v,
        u,
      );
      held.set(v, { self: plain.subarray(0, 32), key: plain.subarray(32) });
    });
    if (from.length + 1 < t) throw new Error('too few shares arrived');
    if (this.options.dropAfterForwardedInRound === round) {
      this.stop();
      return;
    }

    // Step 2: train, privatize, quantise, mask.
    const sent = trainUpdate();
    if (sent.length !== length) throw new Error('update length differs from vectorLength');
    const masked = quantize(sent, quantization.clipRange, quantization.quantizationRange);
    addMask(masked, selfSeed, 1);
    for (const v of [...from].sort((a, b) => a - b)) {
      addMask(masked, pairKey(masking.agree(peers.get(v)!.mask), 'fedbrowser/secagg/v1/pairwise-mask-seed', round, u, v), u < v ? 1 : -1);
    }
    const maskedBytes = Buffer.alloc(4 * length);
    masked.forEach((w, i) => {
      maskedBytes.writeUInt32LE(w, 4 * i);
    });
    await this.send('secagg:masked', { round, from: u, masked: maskedBytes });
    this.rounds.push({ round, secure: true, sent });

    // Step 3: self-mask shares of survivors (me included), masking-key shares of the dropped.
    const request = await this.next('secagg:unmask-request', round);
    const survivors = new Set(request.survivors as number[]);
    const dropped = new Set(request.dropped as number[]);
    if (!survivors.has(u) || survivors.size < t) throw new Error('refusing to unmask');
    const selfMaskOwners: number[] = [];
    const maskingKeyOwners: number[] = [];
    for (const owner of [...held.keys()].sort((a, b) => a - b)) {
      if (survivors.has(owner)) selfMaskOwners.push(owner);
      else if (dropped.has(owner)) maskingKeyOwners.push(owner);
      else throw new Error(`${owner} is neither survivor nor dropped`);
    }
    await this.send('secagg:unmask', {
      round,
      from: u,
      selfMaskOwners,
      selfMaskShares: Buffer.concat(selfMaskOwners.map((o) => held.get(o)!.self)),
      maskingKeyOwners,
      maskingKeyShares: Buffer.concat(maskingKeyOwners.map((o) => held.get(o)!.key)),
    });
  }
}

/** The demo set (§8, FLDS) over HTTP, and this participant's first `count` examples of iid shard k/N. */
export async function loadShard(url: string, k: number, shards: number, count: number): Promise<ConformanceOptions['examples']> {
  const task = (await (await fetch(`${url}/api/task`)).json()) as { demoData: { url: string } };
  const raw = Buffer.from(await (await fetch(url + task.demoData.url)).arrayBuffer());
  if (raw.toString('ascii', 0, 4) !== 'FLDS') throw new Error('not an FLDS file');
  const total = raw.readUInt32LE(4);
  const features = raw.readUInt32LE(8);
  const order = permutation(total, seededRandom(42));
  const mine = order.slice(Math.floor((total * (k - 1)) / shards), Math.floor((total * k) / shards)).slice(0, count);
  const x = new Float32Array(mine.length * features);
  const y = new Uint8Array(mine.length);
  mine.forEach((e, i) => {
    y[i] = raw[16 + e]!;
    for (let f = 0; f < features; f++) x[i * features + f] = raw[16 + total + e * features + f]! / 255;
  });
  return { x, y, features };
}

/** §8's SeededRandom (xoshiro128**, fmix32 seeding). */
function seededRandom(seed: number): () => number {
  const s: number[] = [];
  let x = seed >>> 0;
  for (let i = 0; i < 4; i++) {
    x = (x + 0x9e3779b9) >>> 0;
    let z = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    s.push((z ^ (z >>> 16)) >>> 0);
  }
  const rotl = (v: number, r: number) => ((v << r) | (v >>> (32 - r))) >>> 0;
  const u32 = (): number => {
    const r = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2] = (s[2]! ^ s[0]!) >>> 0;
    s[3] = (s[3]! ^ s[1]!) >>> 0;
    s[1] = (s[1]! ^ s[2]!) >>> 0;
    s[0] = (s[0]! ^ s[3]!) >>> 0;
    s[2] = (s[2]! ^ t) >>> 0;
    s[3] = rotl(s[3]!, 11);
    return r;
  };
  return () => ((u32() >>> 5) * 67108864 + (u32() >>> 6)) / 9007199254740992;
}

function permutation(n: number, next: () => number): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
