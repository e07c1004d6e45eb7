import { copyBytes, isBytes, type Bytes, type KeyHandle } from './bytes.ts';
import {
  checkIndex,
  checkList,
  checkRound,
  indexSet,
  SHARE_CIPHERTEXT_BYTES,
  sorted,
  validateConfig,
  wordBitsOf,
  type SecAggConfig,
} from './config.ts';
import { SecAggAbortError, SecAggError } from './errors.ts';
import { buildNeighbourGraph, connectedAmong, type NeighbourGraph } from './graph.ts';
import {
  agree,
  decryptShare,
  derivePairwiseSeed,
  deriveShareKey,
  encryptShare,
  exportPrivateScalar,
  generateKeyPair,
  importPublicKey,
  PUBLIC_KEY_BYTES,
  type EcdhKeyPair,
} from './keys.ts';
import { applyMask, pairwiseSign } from './masking.ts';
import { reduceWords } from './modulus.ts';
import type {
  AdvertiseKeysMessage,
  ForwardedSharesMessage,
  KeyDirectoryMessage,
  MaskInputOptions,
  MaskedInputMessage,
  OwnedShare,
  ShareKeysMessage,
  UnmaskRequestMessage,
  UnmaskResponseMessage,
} from './messages.ts';
import { quantize } from './quantize.ts';
import { fieldElement, randomSecret, SHARE_BYTES, split } from './shamir.ts';

/** The participant's side of one secure aggregation round (core/secagg/protocol.ts describes the steps). */

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
    return {
      round: this.config.round,
      from: this.index,
      encryptionKey: copyBytes(encryption.publicRaw),
      maskingKey: copyBytes(masking.publicRaw),
    };
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
        if (!isBytes(e.encryptionKey, PUBLIC_KEY_BYTES) || !isBytes(e.maskingKey, PUBLIC_KEY_BYTES))
          throw new SecAggError('wrong-size', `keys of ${v} are not ${PUBLIC_KEY_BYTES} bytes`);
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
        const key = await deriveShareKey(await agree(encryption.privateKey, this.peers.get(v)!.encryptionKey), {
          round: config.round,
          a: index,
          b: v,
        });
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
   *   y_u = quantize(x_u) + PRG(b_u) + Σ_{v ∈ U2 ∩ N(u)} ±PRG(s_uv)   (mod 2^b),
   * computed mod 2^32 and reduced to the round's b bits (mod 2^b is a ring
   * map, so the masks are the PRG words mod 2^b and still cancel).
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
        if (!isBytes(e.ciphertext, SHARE_CIPHERTEXT_BYTES))
          throw new SecAggError('wrong-size', `share ciphertext from ${u} must be ${SHARE_CIPHERTEXT_BYTES} bytes`);
        const key = await deriveShareKey(await agree(encryption.privateKey, peer.encryptionKey), { round: config.round, a: index, b: u });
        const plaintext = await decryptShare(key, e.ciphertext, { round: config.round, from: u, to: index });
        if (plaintext.length !== 2 * SHARE_BYTES)
          throw new SecAggError('wrong-size', `share plaintext from ${u} has ${plaintext.length} bytes`);
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
      const masked = options.encode ? options.encode(values) : quantize(values, config.quantization);
      values.fill(0);
      options.afterQuantize?.(masked);
      if (masked.length !== config.vectorLength)
        throw new SecAggError('wrong-length', 'encode and afterQuantize must not change the length');
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
      reduceWords(masked, wordBitsOf(config));
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
      if (!survivors.has(index))
        throw new SecAggError('inconsistent', `client ${index} sent its masked input but is not listed as a survivor`);
      if (survivors.size < config.threshold)
        throw new SecAggAbortError(`${survivors.size} survivors, threshold ${config.threshold}: no shares revealed`);
      // The cohort minimum is checked here, by each participant, not only by the coordinator it limits.
      if (config.minSurvivors !== undefined && survivors.size < config.minSurvivors)
        throw new SecAggAbortError(`${survivors.size} survivors, cohort minimum ${config.minSurvivors}: no shares revealed`);
      if (!connectedAmong(this.graph, survivors))
        throw new SecAggAbortError('the survivors do not form a connected neighbour graph: unmasking would reveal partial sums');
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
