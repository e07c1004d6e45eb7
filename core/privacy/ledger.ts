import { RdpAccountant, type RdpAccountantState, type SampledGaussianSteps } from './accountant.ts';
import { accountEpsilon, isAccountantKind, type AccountantKind, type AccountedEpsilon } from './epsilon.ts';

/**
 * A participant's privacy ledger for sample-level DP: the history of every
 * sampled-Gaussian step its dataset has been used for (with its RDP curve),
 * kept in durable storage so that reloading the page or coming back next week
 * continues the same sum. ε is read off that history by the chosen
 * accountant (core/privacy/epsilon.ts: 'auto', the smaller of the PLD and RDP
 * bounds, by default), so the stored state does not depend on the choice.
 * The ledger is charged before an update is sent, so a crash between the two
 * can only overcount.
 */

/** Where a ledger persists: IndexedDB in the browser, memory or files elsewhere. */
export interface LedgerStore {
  load(key: string): Promise<RdpAccountantState | undefined>;
  /**
   * Atomically replaces what `key` holds with `change(stored)`: no other
   * update of `key` (from any tab) runs between the read and the write.
   * `change` is synchronous; returning undefined leaves the entry as it is.
   * Resolves with what the key holds afterwards.
   */
  update(
    key: string,
    change: (stored: RdpAccountantState | undefined) => RdpAccountantState | undefined,
  ): Promise<RdpAccountantState | undefined>;
}

export class MemoryLedgerStore implements LedgerStore {
  private readonly states = new Map<string, RdpAccountantState>();
  async load(key: string): Promise<RdpAccountantState | undefined> {
    return this.states.get(key);
  }
  // Synchronous between the read and the write, hence atomic.
  async update(
    key: string,
    change: (stored: RdpAccountantState | undefined) => RdpAccountantState | undefined,
  ): Promise<RdpAccountantState | undefined> {
    const next = change(this.states.get(key));
    if (next !== undefined) this.states.set(key, JSON.parse(JSON.stringify(next)) as RdpAccountantState);
    return this.states.get(key);
  }
}

/** What charging a round did: charged, or refused because the stored ε plus this round would pass the budget. */
export type ChargeResult =
  | { readonly charged: true; readonly epsilon: number }
  | { readonly charged: false; readonly epsilon: number; readonly projectedEpsilon: number };

export interface LedgerCheck {
  readonly allowed: boolean;
  /** ε after the planned steps. */
  readonly projectedEpsilon: number;
}

export class PrivacyLedger {
  private constructor(
    private readonly store: LedgerStore,
    readonly key: string,
    private accountant: RdpAccountant,
    readonly delta: number,
    private budget: number | undefined,
    /** Which accountant reads ε off the history. */
    readonly accountantKind: AccountantKind,
  ) {}

  /** The last ε computed, for the accountant state it was computed from (a PLD composition is not free). */
  private accountedCache: { readonly of: RdpAccountant; readonly value: AccountedEpsilon } | undefined;

  /** The ε this ledger stops at (undefined: none). */
  get epsilonBudget(): number | undefined {
    return this.budget;
  }

  /** The person lowers the budget (never raises it): later checks and charges use the lower one. */
  lowerBudget(budget: number): void {
    if (!(budget > 0)) throw new RangeError(`the ε budget must be positive, got ${budget}`);
    this.budget = this.budget === undefined ? budget : Math.min(this.budget, budget);
  }

  /**
   * Opens the ledger of one dataset (`key`), continuing whatever was spent
   * before. `inherit`: older keys the same data may have been charged under
   * (ledgers once keyed by task name); when `key` has no entry yet, it starts
   * from all of their histories composed, so re-keying never resets ε.
   */
  static async open(
    store: LedgerStore,
    key: string,
    delta: number,
    epsilonBudget?: number,
    inherit: readonly string[] = [],
    accountantKind: AccountantKind = 'auto',
  ): Promise<PrivacyLedger> {
    if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
    if (!isAccountantKind(accountantKind)) throw new RangeError(`the accountant must be auto, pld or rdp, got ${String(accountantKind)}`);
    if (epsilonBudget !== undefined && !(epsilonBudget > 0)) throw new RangeError(`the ε budget must be positive, got ${epsilonBudget}`);
    let saved = await store.load(key);
    if (!saved && inherit.length > 0) {
      const inherited = new RdpAccountant();
      let found = false;
      for (const old of inherit) {
        const state = await store.load(old);
        if (!state) continue;
        found = true;
        for (const entry of state.history) inherited.step(entry);
      }
      if (found) saved = await store.update(key, (current) => current ?? inherited.toJSON());
    }
    const accountant = saved ? RdpAccountant.fromJSON(saved) : new RdpAccountant();
    return new PrivacyLedger(store, key, accountant, delta, epsilonBudget, accountantKind);
  }

  /** ε spent so far at the ledger's δ, with which accountant gave it and both bounds. */
  get accounted(): AccountedEpsilon {
    if (this.accountedCache?.of !== this.accountant) {
      this.accountedCache = { of: this.accountant, value: accountEpsilon(this.accountant, this.delta, this.accountantKind) };
    }
    return this.accountedCache.value;
  }

  /** ε spent so far at the ledger's δ. */
  get epsilon(): number {
    return this.accounted.epsilon;
  }

  /** Would these steps keep ε within the budget? */
  check(steps: SampledGaussianSteps): LedgerCheck {
    const projectedEpsilon = accountEpsilon(this.accountant, this.delta, this.accountantKind, steps).epsilon;
    return { allowed: this.epsilonBudget === undefined || projectedEpsilon <= this.epsilonBudget, projectedEpsilon };
  }

  /** Reloads what is stored: other tabs with the same dataset may have charged it. */
  async refresh(): Promise<void> {
    const saved = await this.store.load(this.key);
    if (saved) this.accountant = RdpAccountant.fromJSON(saved);
  }

  /**
   * Records steps that were run, and persists before returning, in one
   * atomic update of the store: it composes onto what is stored at that
   * moment, so tabs charging the same ledger at once all add up. The budget
   * is checked again inside that update: another tab may have spent it since
   * this round was admitted, and then nothing is charged and the update must
   * not be sent.
   */
  async charge(steps: SampledGaussianSteps, options: { readonly alreadyReleased?: boolean } = {}): Promise<ChargeResult> {
    let refused: number | undefined;
    const stored = await this.store.update(this.key, (saved) => {
      const accountant = saved ? RdpAccountant.fromJSON(saved) : new RdpAccountant();
      const projected = accountEpsilon(accountant, this.delta, this.accountantKind, steps).epsilon;
      // A release that already happened is spent whatever the budget says: it is recorded, never refused.
      if (this.epsilonBudget !== undefined && projected > this.epsilonBudget && options.alreadyReleased !== true) {
        refused = projected;
        return undefined;
      }
      accountant.step(steps);
      return accountant.toJSON();
    });
    this.accountant = stored ? RdpAccountant.fromJSON(stored) : new RdpAccountant();
    return refused === undefined
      ? { charged: true, epsilon: this.epsilon }
      : { charged: false, epsilon: this.epsilon, projectedEpsilon: refused };
  }
}

/**
 * A stable identity for a local dataset (FNV-1a, 64 bits, over labels and
 * features): the same data gets the same ledger, other data another one.
 * Not a security measure: it only names the ledger entry.
 */
export function datasetFingerprint(labels: Uint8Array, values: Uint8Array | Float32Array): string {
  const features = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ labels.length;
  const mix = (bytes: Uint8Array) => {
    for (let i = 0; i < bytes.length; i++) {
      h1 = Math.imul(h1 ^ bytes[i]!, 0x01000193) >>> 0;
      h2 = Math.imul(h2 ^ bytes[i]! ^ (h1 >>> 13), 0x5bd1e995) >>> 0;
    }
  };
  mix(labels);
  mix(features);
  return h1.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0');
}
