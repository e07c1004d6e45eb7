import { copyBytes, isBytes, type Bytes, type KeyHandle } from './bytes.ts';
import { SecAggAbortError, SecAggError } from './errors.ts';
import { buildNeighbourGraph, connectedAmong, effectiveDegree, ROUND_SEED_BYTES, type NeighbourGraph } from './graph.ts';
import {
  agree,
  decryptShare,
  derivePairwiseSeed,
  deriveShareKey,
  encryptShare,
  exportPrivateScalar,
  GCM_IV_BYTES,
  GCM_TAG_BYTES,
  generateKeyPair,
  importPrivateScalar,
  importPublicKey,
  PUBLIC_KEY_BYTES,
  type EcdhKeyPair,
} from './keys.ts';
import { applyMask, pairwiseSign } from './masking.ts';
import { addInto, dequantizeSum, maxParticipants, quantize, sumErrorBound, validateQuantization, type QuantizationConfig } from './quantize.ts';
import { fieldElement, randomSecret, reconstruct, SHARE_BYTES, split } from './shamir.ts';

/**
 * One round of secure aggregation (Bonawitz et al., CCS 2017, the
 * honest-but-curious-server variant of §4/§6.1) with the SecAgg+ neighbour
 * graph (Bell et al., CCS 2020) as an option. Pure state machines: no
 * sockets, no timers. The transport calls them in this order:
 *
 *   step 0  AdvertiseKeys   client.advertise()              → server.receiveAdvertise(m)
 *                           server.closeAdvertise()          → KeyDirectory, to every client in U1
 *   step 1  ShareKeys       client.shareKeys(directory)      → server.receiveShareKeys(m)
 *                           server.closeShareKeys()          → one ForwardedShares per client in U2
 *   step 2  MaskedInput     client.maskInput(forwarded, x)   → server.receiveMaskedInput(m)
 *                           server.closeMaskedInput()        → UnmaskRequest, to every client in U3
 *   step 3  Unmasking       client.unmask(request)           → server.receiveUnmask(m)
 *                           server.finish()                  → SecAggResult (the decoded sum)
 *
 * `close*` is called when all expected messages are in or the step's timer
 * fires; later messages are refused as 'late'. The transport must set or check
 * each message's `from` against the authenticated connection: the messages
 * are not signed (no PKI; against an actively malicious server that forges
 * participants the paper's signature and consistency-check steps are needed).
 *
 * Privacy: the server learns only the sum of the inputs of U3 (those who sent
 * a masked input). It holds, for each participant, shares of one secret only:
 * the self-mask seed b_u for u ∈ U3 or the masking key s_u^SK for u ∈ U2∖U3,
 * never both (clients reveal one kind per owner, once; the server refuses the
 * other kind). Because t > (k + 1)/2 — a strict majority of the k + 1 holders
 * of u's shares — even a server that told different clients different survivor
 * lists could not collect t shares of both kinds without colluding clients.
 *
 * With a sparse graph the survivors U3 must stay connected in it, or the
 * server could read the partial sum of a part of U3 that has no edge to the
 * rest (a survivor whose neighbours all dropped: its input); both sides
 * refuse to unmask then.
 *
 * Robustness/security trade-off of (k, t): a round survives as long as every
 * needed secret keeps t live holders among its k + 1, i.e. up to k + 1 − t
 * drop-outs per neighbourhood; an honest-but-curious server together with
 * fewer than t colluding clients in any neighbourhood learns nothing beyond
 * the sum of the honest inputs (in SecAgg+ as long as the honest survivors
 * stay connected, which k ≈ 2 log2 n gives with high probability). Larger t:
 * more collusion resistance, less drop-out tolerance. All pairs is k = n − 1.
 */

export interface SecAggConfig {
  /** The round number, bound into every derived key and ciphertext (uint32). */
  readonly round: number;
  /** n: the selected participants, indexed 1..n for this round. */
  readonly participants: number;
  /** k: neighbours per participant (SecAgg+), or 'all' (SecAgg). k ≥ n − 1 means all. */
  readonly neighbours: number | 'all';
  /** t: shares needed to reconstruct a secret; (k + 1)/2 < t ≤ k + 1. */
  readonly threshold: number;
  /** 32 public random bytes from the server, fresh per round: they fix the neighbour graph. */
  readonly roundSeed: Uint8Array;
  /** Parameters per update. */
  readonly vectorLength: number;
  readonly quantization: QuantizationConfig;
}

/** Bytes of one share ciphertext: IV ‖ AES-GCM(self-mask share ‖ masking-key share) ‖ tag. */
export const SHARE_CIPHERTEXT_BYTES = GCM_IV_BYTES + 2 * SHARE_BYTES + GCM_TAG_BYTES;

/** The smallest threshold allowed: a strict majority of a participant's k + 1 share holders. */
export function recommendedThreshold(participants: number, neighbours: number | 'all'): number {
  return Math.floor((effectiveDegree(participants, neighbours) + 1) / 2) + 1;
}

/** Checks everything both sides rely on; returns the effective degree k. */
export function validateConfig(config: SecAggConfig): number {
  const { round, participants: n, threshold: t } = config;
  if (!Number.isInteger(round) || round < 0 || round > 0xffffffff) throw new SecAggError('invalid-config', `round must be a uint32, got ${round}`);
  if (!Number.isInteger(n) || n < 3) throw new SecAggError('invalid-config', `secure aggregation needs at least 3 participants (a sum of 2 reveals each to the other), got ${n}`);
  const k = effectiveDegree(n, config.neighbours);
  if (!Number.isInteger(t) || 2 * t <= k + 1 || t > k + 1) {
    throw new SecAggError('invalid-config', `threshold ${t} must be an integer with ${(k + 1) / 2} < t ≤ ${k + 1} (a strict majority of the k + 1 = ${k + 1} share holders)`);
  }
  if (!isBytes(config.roundSeed, ROUND_SEED_BYTES)) throw new SecAggError('invalid-config', `roundSeed must be ${ROUND_SEED_BYTES} bytes`);
  if (!Number.isInteger(config.vectorLength) || config.vectorLength < 1) throw new SecAggError('invalid-config', `vectorLength must be a positive integer, got ${config.vectorLength}`);
  validateQuantization(config.quantization);
  const max = maxParticipants(config.quantization);
  if (n > max) throw new SecAggError('invalid-config', `${n} participants could overflow the mod-2^32 sum with quantizationRange ${config.quantization.quantizationRange}; at most ${max}`);
  return k;
}

// ---------------------------------------------------------------- messages

/** Step 0, client → server: the two fresh public keys (raw uncompressed P-256 points). */
export interface AdvertiseKeysMessage {
  readonly round: number;
  readonly from: number;
  /** c_u^PK: for the keys that encrypt shares. */
  readonly encryptionKey: Uint8Array;
  /** s_u^PK: for the pairwise mask seeds. */
  readonly maskingKey: Uint8Array;
}

/** Step 0, server → every client in U1: everyone's public keys. */
export interface KeyDirectoryMessage {
  readonly round: number;
  readonly keys: readonly { readonly index: number; readonly encryptionKey: Uint8Array; readonly maskingKey: Uint8Array }[];
}

/** Step 1, client → server: one ciphertext per live neighbour. */
export interface ShareKeysMessage {
  readonly round: number;
  readonly from: number;
  readonly shares: readonly { readonly to: number; readonly ciphertext: Uint8Array }[];
}

/** Step 1, server → each client in U2: the ciphertexts addressed to it. */
export interface ForwardedSharesMessage {
  readonly round: number;
  readonly to: number;
  readonly shares: readonly { readonly from: number; readonly ciphertext: Uint8Array }[];
}

/** Step 2, client → server: the masked, quantised update. */
export interface MaskedInputMessage {
  readonly round: number;
  readonly from: number;
  readonly masked: Uint32Array;
}

/** Step 2, server → every client in U3: who sent a masked input (U3) and who shared keys but did not (U2∖U3). */
export interface UnmaskRequestMessage {
  readonly round: number;
  readonly survivors: readonly number[];
  readonly dropped: readonly number[];
}

export interface OwnedShare {
  /** Whose secret this is a share of. */
  readonly owner: number;
  readonly share: Uint8Array;
}

/** Step 3, client → server: self-mask shares of survivors, masking-key shares of the dropped. */
export interface UnmaskResponseMessage {
  readonly round: number;
  readonly from: number;
  readonly selfMaskShares: readonly OwnedShare[];
  readonly maskingKeyShares: readonly OwnedShare[];
}

export interface SecAggResult {
  readonly round: number;
  /** Σ of the contributors' clipped updates (+ their noise), decoded; float64. */
  readonly sum: Float64Array;
  /** U3: whose inputs are in the sum, ascending. */
  readonly contributors: readonly number[];
  /** Worst-case quantisation error per coordinate: |contributors|·Δ. */
  readonly errorBound: number;
}

export interface MaskInputOptions {
  /**
   * Runs on a copy of the update just before quantisation: the place for the
   * participant's share of distributed DP noise (e.g. addGaussianNoise with
   * std z·C/√m). The server only ever sees the noised sum.
   */
  readonly beforeQuantize?: (values: Float32Array) => void;
  /**
   * Runs on the encoding (Z_{2^32}) before masking: the place for integer
   * distributed DP noise (Skellam), which the sum then carries exactly.
   */
  readonly afterQuantize?: (encoded: Uint32Array) => void;
}

// ---------------------------------------------------------------- helpers

function checkRound(config: SecAggConfig, round: unknown): void {
  if (round !== config.round) throw new SecAggError('wrong-round', `message for round ${String(round)}, this is round ${config.round}`);
}

function checkIndex(config: SecAggConfig, index: unknown, what: string): number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 1 || index > config.participants) {
    throw new SecAggError('unknown-participant', `${what} ${String(index)} is not a participant index in 1..${config.participants}`);
  }
  return index;
}

function checkList(value: unknown, what: string): readonly unknown[] {
  if (!Array.isArray(value)) throw new SecAggError('wrong-size', `${what} must be an array`);
  return value;
}

/** A sorted, duplicate-free list of participant indices. */
function indexSet(config: SecAggConfig, value: unknown, what: string): Set<number> {
  const out = new Set<number>();
  for (const item of checkList(value, what)) {
    const index = checkIndex(config, item, what);
    if (out.has(index)) throw new SecAggError('duplicate', `${what} lists ${index} twice`);
    out.add(index);
  }
  return out;
}

function sorted(set: Iterable<number>): number[] {
  return [...set].sort((a, b) => a - b);
}

// ---------------------------------------------------------------- client

export type ClientPhase = 'advertise' | 'share-keys' | 'masked-input' | 'unmask' | 'done' | 'aborted' | 'busy';

interface Peer {
  readonly encryptionKey: KeyHandle;
  readonly maskingKey: KeyHandle;
}

interface HeldShares {
  readonly selfMask: Bytes;
  readonly maskingKey: Bytes;
}

/**
 * One participant's side of one round. Create it when selected, then feed it
 * the server's messages in order; each method returns the message to send. Any
 * invalid message from the server aborts the client (secrets wiped, every later
 * call refused) because it cannot tell a bug from an attack.
 */
export class SecAggClient {
  private phase: ClientPhase = 'advertise';
  private peers = new Map<number, Peer>();
  private held = new Map<number, HeldShares>();
  /** U2 ∩ N(u): neighbours whose shares arrived, i.e. whom the input is masked with. */
  private maskedWith = new Set<number>();
  private selfSeed: Bytes | null = null;

  private constructor(
    readonly config: SecAggConfig,
    readonly index: number,
    readonly graph: NeighbourGraph,
    private encryptionPair: EcdhKeyPair | null,
    private maskingPair: EcdhKeyPair | null,
  ) {}

  /** Validates the config, derives the graph and makes this round's two key pairs. */
  static async create(config: SecAggConfig, index: number): Promise<SecAggClient> {
    const k = validateConfig(config);
    checkIndex(config, index, 'client index');
    const graph = await buildNeighbourGraph(config.participants, k, config.roundSeed);
    const [encryption, masking] = await Promise.all([generateKeyPair(false), generateKeyPair(true)]);
    return new SecAggClient(config, index, graph, encryption, masking);
  }

  get state(): ClientPhase {
    return this.phase;
  }

  private enter(expected: ClientPhase, step: string): void {
    if (this.phase === 'aborted') throw new SecAggError('aborted', `client ${this.index} aborted this round`);
    if (this.phase !== expected) throw new SecAggError('out-of-order', `client ${this.index}: ${step} called in phase ${this.phase}`);
    this.phase = 'busy';
  }

  private async step<T>(next: ClientPhase, body: () => Promise<T>): Promise<T> {
    try {
      const out = await body();
      this.phase = next;
      return out;
    } catch (error) {
      this.abort();
      throw error;
    }
  }

  /** Wipes the secrets; every later call is refused. */
  abort(): void {
    this.phase = 'aborted';
    this.wipe();
  }

  private wipe(): void {
    this.selfSeed?.fill(0);
    this.selfSeed = null;
    for (const h of this.held.values()) {
      h.selfMask.fill(0);
      h.maskingKey.fill(0);
    }
    this.held.clear();
    this.peers.clear();
    this.encryptionPair = null;
    this.maskingPair = null;
  }

  private pairs(): { encryption: EcdhKeyPair; masking: EcdhKeyPair } {
    if (this.encryptionPair === null || this.maskingPair === null) throw new SecAggError('aborted', 'keys were wiped');
    return { encryption: this.encryptionPair, masking: this.maskingPair };
  }

  /** Step 0: this round's public keys. */
  advertise(): AdvertiseKeysMessage {
    this.enter('advertise', 'advertise');
    const { encryption, masking } = this.pairs();
    this.phase = 'share-keys';
    return { round: this.config.round, from: this.index, encryptionKey: copyBytes(encryption.publicRaw), maskingKey: copyBytes(masking.publicRaw) };
  }

  /**
   * Step 1: splits b_u and s_u^SK among itself and its live neighbours (those
   * in the directory) and encrypts each neighbour's pair of shares for it.
   */
  async shareKeys(directory: KeyDirectoryMessage): Promise<ShareKeysMessage> {
    this.enter('share-keys', 'shareKeys');
    return this.step('masked-input', async () => {
      const { config, index } = this;
      checkRound(config, directory.round);
      const { encryption, masking } = this.pairs();
      const seen = new Set<number>();
      let sawSelf = false;
      for (const entry of checkList(directory.keys, 'directory')) {
        const e = entry as KeyDirectoryMessage['keys'][number];
        const v = checkIndex(config, e.index, 'directory entry');
        if (seen.has(v)) throw new SecAggError('duplicate', `directory lists ${v} twice`);
        seen.add(v);
        if (!isBytes(e.encryptionKey, PUBLIC_KEY_BYTES) || !isBytes(e.maskingKey, PUBLIC_KEY_BYTES)) throw new SecAggError('wrong-size', `keys of ${v} are not ${PUBLIC_KEY_BYTES} bytes`);
        if (v === index) {
          sawSelf = sameBytes(e.encryptionKey, encryption.publicRaw) && sameBytes(e.maskingKey, masking.publicRaw);
          if (!sawSelf) throw new SecAggError('inconsistent', `the directory has other keys for ${index}`);
        } else if (this.graph.areNeighbours(index, v)) {
          const [encryptionKey, maskingKey] = await Promise.all([importPublicKey(e.encryptionKey), importPublicKey(e.maskingKey)]);
          this.peers.set(v, { encryptionKey, maskingKey });
        }
      }
      if (!sawSelf) throw new SecAggError('inconsistent', `the directory does not list ${index}`);
      const holders = [index, ...sorted(this.peers.keys())];
      if (holders.length < config.threshold) {
        throw new SecAggAbortError(`client ${index}: ${holders.length} live share holders, threshold ${config.threshold}`);
      }
      const selfSeed = randomSecret();
      const scalar = await exportPrivateScalar(masking);
      const selfShares = split(selfSeed, holders, config.threshold);
      const keyShares = split(scalar, holders, config.threshold);
      scalar.fill(0);
      this.selfSeed = selfSeed;
      const shares: { to: number; ciphertext: Uint8Array }[] = [];
      for (let i = 0; i < holders.length; i++) {
        const v = holders[i]!;
        const pair = { selfMask: copyBytes(selfShares[i]!.value), maskingKey: copyBytes(keyShares[i]!.value) };
        if (v === index) {
          this.held.set(index, pair);
          continue;
        }
        const route = { round: config.round, from: index, to: v };
        const key = await deriveShareKey(await agree(encryption.privateKey, this.peers.get(v)!.encryptionKey), { round: config.round, a: index, b: v });
        const plaintext = new Uint8Array(2 * SHARE_BYTES);
        plaintext.set(pair.selfMask, 0);
        plaintext.set(pair.maskingKey, SHARE_BYTES);
        shares.push({ to: v, ciphertext: await encryptShare(key, plaintext, route) });
        plaintext.fill(0);
        pair.selfMask.fill(0);
        pair.maskingKey.fill(0);
      }
      return { round: config.round, from: index, shares };
    });
  }

  /**
   * Step 2: decrypts the shares its neighbours sent, then returns
   *   y_u = quantize(x_u) + PRG(b_u) + Σ_{v ∈ U2 ∩ N(u)} ±PRG(s_uv)   (mod 2^32).
   * `update` is not modified.
   */
  async maskInput(forwarded: ForwardedSharesMessage, update: Float32Array, options: MaskInputOptions = {}): Promise<MaskedInputMessage> {
    this.enter('masked-input', 'maskInput');
    return this.step('unmask', async () => {
      const { config, index } = this;
      checkRound(config, forwarded.round);
      if (forwarded.to !== index) throw new SecAggError('unknown-participant', `shares for ${String(forwarded.to)} delivered to ${index}`);
      if (!(update instanceof Float32Array) || update.length !== config.vectorLength) {
        throw new SecAggError('wrong-length', `update must be a Float32Array of length ${config.vectorLength}`);
      }
      const { encryption, masking } = this.pairs();
      for (const entry of checkList(forwarded.shares, 'forwarded shares')) {
        const e = entry as ForwardedSharesMessage['shares'][number];
        const u = checkIndex(config, e.from, 'share sender');
        const peer = this.peers.get(u);
        if (peer === undefined) throw new SecAggError('unknown-participant', `client ${index} has no live neighbour ${u}`);
        if (this.held.has(u)) throw new SecAggError('duplicate', `two share ciphertexts from ${u}`);
        if (!isBytes(e.ciphertext, SHARE_CIPHERTEXT_BYTES)) throw new SecAggError('wrong-size', `share ciphertext from ${u} must be ${SHARE_CIPHERTEXT_BYTES} bytes`);
        const key = await deriveShareKey(await agree(encryption.privateKey, peer.encryptionKey), { round: config.round, a: index, b: u });
        const plaintext = await decryptShare(key, e.ciphertext, { round: config.round, from: u, to: index });
        if (plaintext.length !== 2 * SHARE_BYTES) throw new SecAggError('wrong-size', `share plaintext from ${u} has ${plaintext.length} bytes`);
        const selfMask = plaintext.slice(0, SHARE_BYTES);
        const maskingKey = plaintext.slice(SHARE_BYTES);
        plaintext.fill(0);
        fieldElement(selfMask, `share from ${u}`);
        fieldElement(maskingKey, `share from ${u}`);
        this.held.set(u, { selfMask, maskingKey });
        this.maskedWith.add(u);
      }
      if (this.maskedWith.size + 1 < config.threshold) {
        throw new SecAggAbortError(`client ${index}: shares from ${this.maskedWith.size} neighbours, threshold ${config.threshold}`);
      }
      const values = new Float32Array(update);
      options.beforeQuantize?.(values);
      if (values.length !== config.vectorLength) throw new SecAggError('wrong-length', 'beforeQuantize must not change the length');
      const masked = quantize(values, config.quantization);
      values.fill(0);
      options.afterQuantize?.(masked);
      if (masked.length !== config.vectorLength) throw new SecAggError('wrong-length', 'afterQuantize must not change the length');
      const selfSeed = this.selfSeed;
      if (selfSeed === null) throw new SecAggError('aborted', 'self-mask seed was wiped');
      await applyMask(masked, selfSeed, 1);
      selfSeed.fill(0);
      this.selfSeed = null;
      for (const v of sorted(this.maskedWith)) {
        const shared = await agree(masking.privateKey, this.peers.get(v)!.maskingKey);
        const seed = await derivePairwiseSeed(shared, { round: config.round, a: index, b: v });
        shared.fill(0);
        await applyMask(masked, seed, pairwiseSign(index, v));
        seed.fill(0);
      }
      return { round: config.round, from: index, masked };
    });
  }

  /**
   * Step 3: for each owner whose shares it holds, the self-mask share if the
   * owner is a survivor, the masking-key share if it dropped. Answered once;
   * refused if the survivors are fewer than t, if it is itself listed as
   * dropped, or if the lists contradict what it saw.
   */
  async unmask(request: UnmaskRequestMessage): Promise<UnmaskResponseMessage> {
    this.enter('unmask', 'unmask');
    return this.step('done', async () => {
      const { config, index } = this;
      checkRound(config, request.round);
      const survivors = indexSet(config, request.survivors, 'survivors');
      const dropped = indexSet(config, request.dropped, 'dropped');
      for (const d of dropped) if (survivors.has(d)) throw new SecAggError('inconsistent', `${d} is listed as survivor and dropped`);
      if (!survivors.has(index)) throw new SecAggError('inconsistent', `client ${index} sent its masked input but is not listed as a survivor`);
      if (survivors.size < config.threshold) throw new SecAggAbortError(`${survivors.size} survivors, threshold ${config.threshold}: no shares revealed`);
      if (!connectedAmong(this.graph, survivors)) throw new SecAggAbortError('the survivors do not form a connected neighbour graph: unmasking would reveal partial sums');
      for (const v of [...survivors, ...dropped]) {
        if (v !== index && this.graph.areNeighbours(index, v) && !this.held.has(v)) {
          throw new SecAggError('inconsistent', `${v} is listed as having shared keys but client ${index} never got its shares`);
        }
      }
      const selfMaskShares: OwnedShare[] = [];
      const maskingKeyShares: OwnedShare[] = [];
      for (const owner of sorted(this.held.keys())) {
        const h = this.held.get(owner)!;
        if (survivors.has(owner)) selfMaskShares.push({ owner, share: copyBytes(h.selfMask) });
        else if (dropped.has(owner)) maskingKeyShares.push({ owner, share: copyBytes(h.maskingKey) });
        else throw new SecAggError('inconsistent', `${owner} shared keys but is listed neither as survivor nor as dropped`);
      }
      this.wipe();
      return { round: config.round, from: index, selfMaskShares, maskingKeyShares };
    });
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

// ---------------------------------------------------------------- server

export type ServerPhase = 'advertise' | 'share-keys' | 'masked-input' | 'unmask' | 'done' | 'aborted' | 'busy';
const ORDER: readonly ServerPhase[] = ['advertise', 'share-keys', 'masked-input', 'unmask', 'done'];

/** The one kind of share the server accepts for an owner, fixed when step 2 closes. */
export type ShareKind = 'self-mask' | 'masking-key';

interface ShareBox {
  readonly kind: ShareKind;
  readonly byHolder: Map<number, Bytes>;
}

/**
 * The coordinator's side of one round. It relays keys and ciphertexts it
 * cannot read, keeps masked vectors it cannot read, and at the end
 * reconstructs exactly the secrets that the rules allow.
 */
export class SecAggServer {
  private phase: ServerPhase = 'advertise';
  private readonly advertised = new Map<number, { encryptionKey: Bytes; maskingKey: Bytes }>();
  private readonly pendingAdvertise = new Set<number>();
  private u1 = new Set<number>();
  private readonly ciphertexts = new Map<number, { to: number; ciphertext: Bytes }[]>();
  private u2 = new Set<number>();
  private readonly masked = new Map<number, Uint32Array>();
  private u3 = new Set<number>();
  private readonly shares = new Map<number, ShareBox>();
  private readonly responded = new Set<number>();

  private constructor(
    readonly config: SecAggConfig,
    readonly graph: NeighbourGraph,
  ) {}

  static async create(config: SecAggConfig): Promise<SecAggServer> {
    const k = validateConfig(config);
    return new SecAggServer(config, await buildNeighbourGraph(config.participants, k, config.roundSeed));
  }

  get state(): ServerPhase {
    return this.phase;
  }

  /** Refuses messages for a step that is over ('late') or not open yet ('out-of-order'). */
  private expect(phase: ServerPhase, what: string): void {
    if (this.phase === phase) return;
    if (this.phase === 'aborted') throw new SecAggError('aborted', `round ${this.config.round} was aborted`);
    const now = ORDER.indexOf(this.phase === 'busy' ? 'done' : this.phase);
    if (now > ORDER.indexOf(phase)) throw new SecAggError('late', `${what} after its step closed`);
    throw new SecAggError('out-of-order', `${what} before its step opened (server is in ${this.phase})`);
  }

  /** Ends the round (a timeout, a transport failure): drops everything it holds. */
  abort(): void {
    this.phase = 'aborted';
    this.advertised.clear();
    this.ciphertexts.clear();
    this.masked.clear();
    for (const box of this.shares.values()) for (const s of box.byHolder.values()) s.fill(0);
    this.shares.clear();
  }

  private fail(message: string): never {
    this.abort();
    throw new SecAggAbortError(message);
  }

  /** Step 0: validates both public keys (on the curve) before accepting them. */
  async receiveAdvertise(message: AdvertiseKeysMessage): Promise<void> {
    this.expect('advertise', 'AdvertiseKeys');
    checkRound(this.config, message.round);
    const from = checkIndex(this.config, message.from, 'sender');
    if (this.advertised.has(from) || this.pendingAdvertise.has(from)) throw new SecAggError('duplicate', `${from} already advertised keys`);
    if (!isBytes(message.encryptionKey, PUBLIC_KEY_BYTES) || !isBytes(message.maskingKey, PUBLIC_KEY_BYTES)) {
      throw new SecAggError('wrong-size', `public keys must be ${PUBLIC_KEY_BYTES} bytes`);
    }
    this.pendingAdvertise.add(from);
    try {
      await Promise.all([importPublicKey(message.encryptionKey), importPublicKey(message.maskingKey)]);
    } finally {
      this.pendingAdvertise.delete(from);
    }
    this.expect('advertise', 'AdvertiseKeys');
    this.advertised.set(from, { encryptionKey: copyBytes(message.encryptionKey), maskingKey: copyBytes(message.maskingKey) });
  }

  /** Closes step 0: U1 = who advertised; the directory goes to each of them. */
  closeAdvertise(): KeyDirectoryMessage {
    this.expect('advertise', 'closeAdvertise');
    this.u1 = new Set(this.advertised.keys());
    if (this.u1.size < this.config.threshold) this.fail(`${this.u1.size} participants advertised keys, threshold ${this.config.threshold}`);
    this.phase = 'share-keys';
    return {
      round: this.config.round,
      keys: sorted(this.u1).map((index) => {
        const k = this.advertised.get(index)!;
        return { index, encryptionKey: copyBytes(k.encryptionKey), maskingKey: copyBytes(k.maskingKey) };
      }),
    };
  }

  /** Step 1: one ciphertext for each neighbour of the sender in U1, no more, no less. */
  receiveShareKeys(message: ShareKeysMessage): void {
    this.expect('share-keys', 'ShareKeys');
    checkRound(this.config, message.round);
    const from = checkIndex(this.config, message.from, 'sender');
    if (!this.u1.has(from)) throw new SecAggError('unknown-participant', `${from} did not advertise keys`);
    if (this.ciphertexts.has(from)) throw new SecAggError('duplicate', `${from} already shared keys`);
    const expected = new Set(this.graph.neighbours(from).filter((v) => this.u1.has(v)));
    const out: { to: number; ciphertext: Bytes }[] = [];
    const seen = new Set<number>();
    for (const entry of checkList(message.shares, 'shares')) {
      const e = entry as ShareKeysMessage['shares'][number];
      const to = checkIndex(this.config, e.to, 'share recipient');
      if (!expected.has(to)) throw new SecAggError('unknown-recipient', `${to} is not a live neighbour of ${from}`);
      if (seen.has(to)) throw new SecAggError('duplicate', `two shares from ${from} for ${to}`);
      seen.add(to);
      if (!isBytes(e.ciphertext, SHARE_CIPHERTEXT_BYTES)) throw new SecAggError('wrong-size', `share ciphertext must be ${SHARE_CIPHERTEXT_BYTES} bytes`);
      out.push({ to, ciphertext: copyBytes(e.ciphertext) });
    }
    if (seen.size !== expected.size) throw new SecAggError('inconsistent', `${from} sent shares for ${seen.size} of its ${expected.size} live neighbours`);
    this.ciphertexts.set(from, out);
  }

  /** Closes step 1: U2 = who shared; each member of U2 gets the ciphertexts addressed to it. */
  closeShareKeys(): ForwardedSharesMessage[] {
    this.expect('share-keys', 'closeShareKeys');
    this.u2 = new Set(this.ciphertexts.keys());
    if (this.u2.size < this.config.threshold) this.fail(`${this.u2.size} participants shared keys, threshold ${this.config.threshold}`);
    const inbox = new Map<number, { from: number; ciphertext: Uint8Array }[]>();
    for (const v of this.u2) inbox.set(v, []);
    for (const from of sorted(this.u2)) {
      for (const { to, ciphertext } of this.ciphertexts.get(from)!) inbox.get(to)?.push({ from, ciphertext });
    }
    this.ciphertexts.clear();
    this.phase = 'masked-input';
    return sorted(this.u2).map((to) => ({ round: this.config.round, to, shares: inbox.get(to)! }));
  }

  /** Step 2: a vector of the round's length from a member of U2, once. */
  receiveMaskedInput(message: MaskedInputMessage): void {
    this.expect('masked-input', 'MaskedInput');
    checkRound(this.config, message.round);
    const from = checkIndex(this.config, message.from, 'sender');
    if (!this.u2.has(from)) throw new SecAggError('unknown-participant', `${from} did not share keys`);
    if (this.masked.has(from)) throw new SecAggError('duplicate', `${from} already sent its masked input`);
    if (!(message.masked instanceof Uint32Array) || message.masked.length !== this.config.vectorLength) {
      throw new SecAggError('wrong-length', `masked input must be a Uint32Array of length ${this.config.vectorLength}`);
    }
    this.masked.set(from, message.masked.slice());
  }

  /**
   * Closes step 2: U3 = who sent a masked input. From here on each owner in U2
   * has exactly one acceptable share kind: self-mask for U3, masking key for
   * U2∖U3. The request goes to every member of U3.
   */
  closeMaskedInput(): UnmaskRequestMessage {
    this.expect('masked-input', 'closeMaskedInput');
    this.u3 = new Set(this.masked.keys());
    if (this.u3.size < this.config.threshold) this.fail(`${this.u3.size} masked inputs, threshold ${this.config.threshold}`);
    if (!connectedAmong(this.graph, this.u3)) this.fail('the survivors do not form a connected neighbour graph: unmasking would reveal partial sums');
    for (const u of this.u2) this.shares.set(u, { kind: this.u3.has(u) ? 'self-mask' : 'masking-key', byHolder: new Map() });
    this.phase = 'unmask';
    return { round: this.config.round, survivors: sorted(this.u3), dropped: sorted([...this.u2].filter((u) => !this.u3.has(u))) };
  }

  /** Step 3: shares from a member of U3, each of the one kind its owner allows; checked whole before anything is kept. */
  receiveUnmask(message: UnmaskResponseMessage): void {
    this.expect('unmask', 'Unmasking');
    checkRound(this.config, message.round);
    const from = checkIndex(this.config, message.from, 'sender');
    if (!this.u3.has(from)) throw new SecAggError('unknown-participant', `${from} was not asked to unmask`);
    if (this.responded.has(from)) throw new SecAggError('duplicate', `${from} already answered`);
    const accepted: { box: ShareBox; share: Bytes }[] = [];
    const owners = new Set<number>();
    const take = (list: unknown, kind: ShareKind): void => {
      for (const entry of checkList(list, `${kind} shares`)) {
        const e = entry as OwnedShare;
        const owner = checkIndex(this.config, e.owner, 'share owner');
        const box = this.shares.get(owner);
        if (box === undefined) throw new SecAggError('unknown-participant', `${owner} did not share keys`);
        if (owner !== from && !this.graph.areNeighbours(from, owner)) throw new SecAggError('unknown-recipient', `${from} holds no shares of ${owner}`);
        if (box.kind !== kind) {
          throw new SecAggError('wrong-share-kind', `${owner} ${box.kind === 'self-mask' ? 'is a survivor: its masking key' : 'dropped: its self-mask seed'} must never be reconstructed`);
        }
        if (owners.has(owner)) throw new SecAggError('duplicate', `${from} sent two shares of ${owner}`);
        owners.add(owner);
        fieldElement(e.share, `share of ${owner}`);
        accepted.push({ box, share: copyBytes(e.share) });
      }
    };
    take(message.selfMaskShares, 'self-mask');
    take(message.maskingKeyShares, 'masking-key');
    this.responded.add(from);
    for (const { box, share } of accepted) box.byHolder.set(from, share);
  }

  /** Audit: for each owner, the one kind of share held and how many (never both kinds: enforced). */
  shareLedger(): Map<number, { kind: ShareKind; count: number }> {
    return new Map([...this.shares].map(([owner, box]) => [owner, { kind: box.kind, count: box.byHolder.size }]));
  }

  /**
   * Closes step 3 and computes the sum. Checks first that every needed secret
   * has t shares (else aborts without reconstructing anything), then removes
   * the survivors' self masks and the dropped participants' pairwise masks.
   */
  async finish(): Promise<SecAggResult> {
    this.expect('unmask', 'finish');
    this.phase = 'busy';
    const { config } = this;
    const t = config.threshold;
    const missing: string[] = [];
    const needed: number[] = [];
    for (const [owner, box] of this.shares) {
      // A dropped participant's key is only needed if a survivor masked with it.
      if (box.kind === 'masking-key' && !this.graph.neighbours(owner).some((v) => this.u3.has(v))) continue;
      needed.push(owner);
      if (box.byHolder.size < t) missing.push(`${owner} (${box.kind}: ${box.byHolder.size} of ${t})`);
    }
    if (missing.length > 0) this.fail(`too few shares to unmask: ${missing.join(', ')}`);
    try {
      const sum = new Uint32Array(config.vectorLength);
      for (const u of sorted(this.u3)) addInto(sum, this.masked.get(u)!);
      this.masked.clear();
      const survivorKeys = new Map<number, KeyHandle>();
      const survivorKey = async (v: number): Promise<KeyHandle> => {
        const cached = survivorKeys.get(v);
        if (cached !== undefined) return cached;
        const key = await importPublicKey(this.advertised.get(v)!.maskingKey);
        survivorKeys.set(v, key);
        return key;
      };
      for (const owner of sorted(needed)) {
        const box = this.shares.get(owner)!;
        const shares = sorted(box.byHolder.keys()).map((index) => ({ index, value: box.byHolder.get(index)! }));
        const secret = reconstruct(shares, t);
        if (box.kind === 'self-mask') {
          await applyMask(sum, secret, -1);
        } else {
          const privateKey = await importPrivateScalar(secret, this.advertised.get(owner)!.maskingKey);
          for (const v of this.graph.neighbours(owner)) {
            if (!this.u3.has(v)) continue;
            const seed = await derivePairwiseSeed(await agree(privateKey, await survivorKey(v)), { round: config.round, a: owner, b: v });
            // v added pairwiseSign(v, owner)·PRG(seed): take it away.
            await applyMask(sum, seed, pairwiseSign(v, owner) === 1 ? -1 : 1);
            seed.fill(0);
          }
        }
        secret.fill(0);
      }
      const contributors = sorted(this.u3);
      const result: SecAggResult = {
        round: config.round,
        sum: dequantizeSum(sum, contributors.length, config.quantization),
        contributors,
        errorBound: sumErrorBound(config.quantization, contributors.length),
      };
      this.abort();
      this.phase = 'done';
      return result;
    } catch (error) {
      this.abort();
      throw error;
    }
  }
}
