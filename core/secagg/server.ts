import { copyBytes, isBytes, type Bytes, type KeyHandle } from './bytes.ts';
import {
  checkIndex,
  checkList,
  checkRound,
  SHARE_CIPHERTEXT_BYTES,
  sorted,
  validateConfig,
  wordBitsOf,
  type SecAggConfig,
} from './config.ts';
import { SecAggAbortError, SecAggError } from './errors.ts';
import { buildNeighbourGraph, connectedAmong, type NeighbourGraph } from './graph.ts';
import { agree, derivePairwiseSeed, importPrivateScalar, importPublicKey, PUBLIC_KEY_BYTES } from './keys.ts';
import { applyMask, pairwiseSign } from './masking.ts';
import { reduceWords } from './modulus.ts';
import type {
  AdvertiseKeysMessage,
  ForwardedSharesMessage,
  KeyDirectoryMessage,
  MaskedInputMessage,
  OwnedShare,
  SecAggResult,
  ShareKeysMessage,
  UnmaskRequestMessage,
  UnmaskResponseMessage,
} from './messages.ts';
import { addInto, dequantizeSum, sumErrorBound } from './quantize.ts';
import { fieldElement, reconstruct } from './shamir.ts';

/** The coordinator's side of one secure aggregation round (core/secagg/protocol.ts describes the steps). */

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
    if (this.u1.size < this.config.threshold)
      this.fail(`${this.u1.size} participant${this.u1.size === 1 ? '' : 's'} advertised keys, threshold ${this.config.threshold}`);
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
      if (!isBytes(e.ciphertext, SHARE_CIPHERTEXT_BYTES))
        throw new SecAggError('wrong-size', `share ciphertext must be ${SHARE_CIPHERTEXT_BYTES} bytes`);
      out.push({ to, ciphertext: copyBytes(e.ciphertext) });
    }
    if (seen.size !== expected.size)
      throw new SecAggError('inconsistent', `${from} sent shares for ${seen.size} of its ${expected.size} live neighbours`);
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
    const bits = wordBitsOf(this.config);
    if (bits < 32) {
      const limit = 2 ** bits;
      const at = message.masked.findIndex((w) => w >= limit);
      if (at >= 0) throw new SecAggError('bad-packing', `masked word ${at} (${message.masked[at]}) is not below 2^${bits}`);
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
    if (!connectedAmong(this.graph, this.u3))
      this.fail('the survivors do not form a connected neighbour graph: unmasking would reveal partial sums');
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
        if (owner !== from && !this.graph.areNeighbours(from, owner))
          throw new SecAggError('unknown-recipient', `${from} holds no shares of ${owner}`);
        if (box.kind !== kind) {
          throw new SecAggError(
            'wrong-share-kind',
            `${owner} ${box.kind === 'self-mask' ? 'is a survivor: its masking key' : 'dropped: its self-mask seed'} must never be reconstructed`,
          );
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
      // Everything above is mod 2^32; the inputs and masks live in Z_{2^b}, its image under reduction mod 2^b.
      const bits = wordBitsOf(config);
      reduceWords(sum, bits);
      const contributors = sorted(this.u3);
      const result: SecAggResult = {
        round: config.round,
        sum: dequantizeSum(sum, contributors.length, config.quantization, bits),
        contributors,
        errorBound: sumErrorBound(config.quantization, contributors.length, bits),
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
