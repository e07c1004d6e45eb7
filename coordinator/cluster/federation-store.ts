import type { Redis } from 'ioredis';
import type { RoundRecord } from '../../core/protocol/status.ts';
import type { GlobalModel, ResumePoint } from '../rounds/round-engine.ts';
import type { FencedOp, FencedStore } from './fenced-store.ts';
import type { ClusterKeys } from './keys.ts';

/** The head of the federation in Redis: what a new leader resumes from. */
export interface FederationHead {
  readonly task: string;
  readonly paramCount: number;
  /** The last completed round (0: none yet). */
  readonly round: number;
  readonly modelVersion: number;
  /** The last round number ever started: a new leader numbers on after it, so an abandoned round's number is never reused. */
  readonly lastStartedRound: number;
}

/** The federation as Redis holds it. */
export interface StoredFederation {
  readonly head: FederationHead;
  /** Absent before the first completed round. Its history starts at record `historyFrom`. */
  readonly resume: ResumePoint | undefined;
  /** How many of the first round records the reader holds already and were not read (load's `known`); 0 for the whole history. */
  readonly historyFrom: number;
  readonly strategy: { readonly name: string; readonly state: unknown } | undefined;
}

/** The round records a follower holds already: the first `length` of the history, the last of them `last`. */
export interface KnownHistory {
  readonly length: number;
  readonly last: RoundRecord | undefined;
}

/**
 * The federation's durable state in Redis, written only by the leader and
 * fenced by its term: a completed round's record, its model (binary, once
 * per version) and the strategy state go in one atomic script, so a round is
 * either wholly stored or not at all, and nothing shows it before. Nodes read
 * the head and the model from here; a new leader resumes from here, not
 * from the dead leader's disk.
 */
export class FederationStore {
  constructor(
    private readonly redis: Redis,
    private readonly fenced: FencedStore,
    private readonly keys: ClusterKeys,
    private readonly task: { readonly name: string; readonly paramCount: number },
  ) {}

  /**
   * Records that `round` starts, before any participant hears of it, with
   * the model it trains from when Redis does not hold that version yet
   * (version 0, or a resumed node's): every node can fetch the round's model
   * by its version from here.
   */
  async markRoundStarted(term: number, round: number, model?: GlobalModel): Promise<void> {
    const head = await this.head();
    const next: FederationHead = { ...(head ?? this.emptyHead()), lastStartedRound: Math.max(round, head?.lastStartedRound ?? 0) };
    const ops: FencedOp[] = [];
    if (model !== undefined && (await this.redis.exists(this.keys.model(model.version))) === 0) ops.push(modelOp(this.keys, model));
    ops.push({ kind: 'set', key: this.keys.head, value: JSON.stringify(next) });
    await this.fenced.write(term, ops);
  }

  /** Stores a closed round whole (record, model if new, strategy state, head), or refuses it whole. */
  async commitRound(term: number, record: RoundRecord, model: GlobalModel, strategy: StoredFederation['strategy']): Promise<void> {
    const before = await this.head();
    // A retried save (the disk part failed after this one succeeded) must not store the round twice; it still proves
    // its term (an empty fenced write), so a deposed leader whose round is older than the head is refused, not told "stored".
    if (before !== undefined && before.round >= record.round) return this.fenced.write(term, []);
    const head: FederationHead = {
      ...(before ?? this.emptyHead()),
      round: record.round,
      modelVersion: model.version,
      lastStartedRound: Math.max(record.round, before?.lastStartedRound ?? 0),
    };
    const ops: FencedOp[] = [];
    if (before?.modelVersion !== model.version) {
      ops.push(modelOp(this.keys, model));
      // One model per version, and only the current one is kept (version 0 too, stored when round 1 started): nodes fetch it once per version.
      if (before !== undefined) ops.push({ kind: 'del', key: this.keys.model(before.modelVersion) });
    }
    ops.push({ kind: 'rpush', key: this.keys.history, value: JSON.stringify(record) });
    if (strategy !== undefined) ops.push({ kind: 'set', key: this.keys.strategy, value: JSON.stringify(strategy) });
    ops.push({ kind: 'set', key: this.keys.head, value: JSON.stringify(head) });
    await this.fenced.write(term, ops);
  }

  async head(): Promise<FederationHead | undefined> {
    const text = await this.redis.get(this.keys.head);
    return text === null ? undefined : (JSON.parse(text) as FederationHead);
  }

  /** The model of `version`, or undefined when Redis no longer holds it. */
  async model(version: number): Promise<Float32Array | undefined> {
    const bytes = await this.redis.getBuffer(this.keys.model(version));
    if (bytes === null) return undefined;
    if (bytes.byteLength !== this.task.paramCount * 4)
      throw new Error(`model version ${version} in Redis has ${bytes.byteLength} bytes, expected ${this.task.paramCount * 4}`);
    // Buffers from the socket may not be 4-byte aligned: copy before viewing as float32.
    return new Float32Array(new Uint8Array(bytes).buffer);
  }

  /**
   * The federation as stored, checked against this task; undefined when
   * Redis holds none. `known`: the history a follower holds already, so only
   * the records after it are read (the history is only ever appended to), as
   * long as Redis's record at its end is the one it holds, whole; else the
   * whole history (a node that held records of its own disk checkpoint, a
   * Redis that lost a commit). Records of rounds past the head (committed after it was read)
   * wait for the next load.
   */
  async load(known?: KnownHistory): Promise<StoredFederation | undefined> {
    const head = await this.head();
    if (head === undefined) return undefined;
    if (head.task !== this.task.name || head.paramCount !== this.task.paramCount)
      throw new Error(
        `Redis holds federation ${head.task} with ${head.paramCount} parameters under these keys, not ${this.task.name} with ${this.task.paramCount}`,
      );
    const strategyText = await this.redis.get(this.keys.strategy);
    const strategy = strategyText === null ? undefined : (JSON.parse(strategyText) as StoredFederation['strategy']);
    if (head.round === 0) return { head, resume: undefined, historyFrom: 0, strategy };
    const weights = await this.model(head.modelVersion);
    if (weights === undefined) throw new Error(`Redis holds round ${head.round} but not its model (version ${head.modelVersion})`);
    const { from, history } = await this.historyAfter(known, head.round);
    return { head, resume: { round: head.round, modelVersion: head.modelVersion, weights, history }, historyFrom: from, strategy };
  }

  private async historyAfter(known: KnownHistory | undefined, headRound: number): Promise<{ from: number; history: RoundRecord[] }> {
    const upToHead = (texts: readonly string[]) => texts.map((text) => JSON.parse(text) as RoundRecord).filter((r) => r.round <= headRound);
    if (known !== undefined && known.length > 0) {
      // From the last known record, to check it is the one this reader holds (it was parsed from this very text).
      const texts = await this.redis.lrange(this.keys.history, known.length - 1, -1);
      if (texts[0] !== undefined && texts[0] === JSON.stringify(known.last))
        return { from: known.length, history: upToHead(texts.slice(1)) };
    }
    return { from: 0, history: upToHead(await this.redis.lrange(this.keys.history, 0, -1)) };
  }

  private emptyHead(): FederationHead {
    return { task: this.task.name, paramCount: this.task.paramCount, round: 0, modelVersion: 0, lastStartedRound: 0 };
  }
}

/** The model's float32 weights under its version's key. */
function modelOp(keys: ClusterKeys, model: GlobalModel): FencedOp {
  const w = model.weights;
  return { kind: 'set', key: keys.model(model.version), value: Buffer.from(w.buffer, w.byteOffset, w.byteLength) };
}
