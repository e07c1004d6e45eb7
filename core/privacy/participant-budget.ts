import type { Dataset } from '../data/dataset.ts';
import type { SampleDpConfig } from '../protocol/messages.ts';
import { ClientLevelLedger } from './client-ledger.ts';
import type { AccountantKind } from './epsilon.ts';
import { PrivacyLedger, type LedgerStore } from './ledger.ts';

/**
 * What the participant, not the coordinator, decides about its privacy
 * budget: which ledger its data charges (the data's own content hash), the δ
 * its ε is stated at (pinned on the device), and the ε budget when the task
 * sets none. A coordinator can rename the task, ask for a huge δ or omit the
 * budget; none of it resets or loosens what the participant has spent.
 */

/** The participant's own largest acceptable δ when the person sets none. */
export const DEFAULT_MAX_DELTA = 1e-5;
/** The ε budget of a dataset when neither the task nor the person sets one. */
export const DEFAULT_EPSILON_BUDGET = 10;

/**
 * δ pinned on the device: the person's maximum (default 1e-5), never above
 * 1/n for n examples (a δ of 1/n allows releasing one example in the clear).
 */
export function deviceDelta(numExamples: number, ownMaxDelta: number = DEFAULT_MAX_DELTA): number {
  if (!(Number.isInteger(numExamples) && numExamples >= 1))
    throw new RangeError(`a dataset needs at least one example, got ${numExamples}`);
  if (!(ownMaxDelta > 0 && ownMaxDelta < 1)) throw new RangeError(`the maximum δ must be in (0, 1), got ${ownMaxDelta}`);
  return Math.min(ownMaxDelta, 1 / numExamples);
}

export type DeltaDecision = { readonly ok: true; readonly delta: number } | { readonly ok: false; readonly message: string };

/**
 * Accepts a task's δ only if it is at most the device's pinned δ; the ledger
 * then states ε at the device's δ (so one dataset's ε means one thing across
 * tasks). A task asking for more is refused with a message saying why.
 */
export function decideDelta(taskDelta: number, numExamples: number, ownMaxDelta: number = DEFAULT_MAX_DELTA): DeltaDecision {
  const pinned = deviceDelta(numExamples, ownMaxDelta);
  if (!(taskDelta > 0) || taskDelta > pinned) {
    return {
      ok: false,
      message: `the task asks for δ = ${taskDelta}, above this device's limit of ${pinned} (the smaller of its own maximum ${ownMaxDelta} and 1/n for ${numExamples} examples): refusing to train for it`,
    };
  }
  return { ok: true, delta: pinned };
}

/** The ε budget: the task's (or the default 10 when it sets none), lowered by the person's own if smaller. */
export function participantBudget(taskBudget: number | undefined, ownBudget: number | undefined): number {
  for (const [name, value] of [
    ['task', taskBudget],
    ['own', ownBudget],
  ] as const) {
    if (value !== undefined && !(value > 0)) throw new RangeError(`the ${name} ε budget must be positive, got ${value}`);
  }
  return Math.min(taskBudget ?? DEFAULT_EPSILON_BUDGET, ownBudget ?? Infinity);
}

/**
 * The ledger key of a prepared dataset: SHA-256 over its shape, labels and
 * feature bytes. The same examples give the same key whatever the task or
 * file is called; any other data gives another key.
 */
export async function contentLedgerKey(data: Dataset): Promise<string> {
  const header = new Uint32Array([data.count, data.features, data.numClasses, data.values instanceof Float32Array ? 4 : 1]);
  const features = new Uint8Array(data.values.buffer, data.values.byteOffset, data.values.byteLength);
  const all = new Uint8Array(header.byteLength + data.labels.byteLength + features.byteLength);
  all.set(new Uint8Array(header.buffer), 0);
  all.set(data.labels, header.byteLength);
  all.set(features, header.byteLength + data.labels.byteLength);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
  return `data-sha256/${Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export interface ParticipantLedgerOptions {
  /** The person's own ε budget; it can only lower the task's (or the default). */
  readonly ownBudget?: number;
  /** The person's largest acceptable δ (default 1e-5). */
  readonly maxDelta?: number;
  /** Keys this data may have been charged under before (ledgers once keyed by task name). */
  readonly legacyKeys?: readonly string[];
  /**
   * The person's own files: one ledger for all of them in this browser,
   * whatever the task or file is called, since an edited or re-exported file
   * (one row fewer) may hold the same people and must not start at ε = 0.
   * Otherwise (a demo shard) the ledger is the examples' content hash.
   */
  readonly ownData?: boolean;
  /**
   * Which accountant reads ε off the ledger's history: the person's choice,
   * else the task's (SampleDpConfig.accountant), else 'auto' (the smaller of
   * the PLD and RDP upper bounds). Every choice is an upper bound on the same
   * history, so a task cannot loosen the ledger by picking one.
   */
  readonly accountant?: AccountantKind;
}

/** The key of the ledger a dataset charges: OWN_DATA_KEY for the person's own files, else its content hash. */
export const OWN_DATA_KEY = 'own-data';

async function ledgerKey(data: Dataset, ownData: boolean | undefined): Promise<string> {
  return ownData ? OWN_DATA_KEY : contentLedgerKey(data);
}

/**
 * Opens the DP-SGD ledger of `data` for a task: keyed by the data's content,
 * at the device's δ, with the participant's budget. Throws (with the reason)
 * when the task's δ is above what the device accepts.
 */
export async function openParticipantLedger(
  store: LedgerStore,
  dp: SampleDpConfig,
  data: Dataset,
  options: ParticipantLedgerOptions = {},
): Promise<PrivacyLedger> {
  const delta = decideDelta(dp.delta, data.count, options.maxDelta);
  if (!delta.ok) throw new Error(delta.message);
  const key = await ledgerKey(data, options.ownData);
  return PrivacyLedger.open(
    store,
    key,
    delta.delta,
    participantBudget(dp.epsilonBudget, options.ownBudget),
    options.legacyKeys,
    options.accountant ?? dp.accountant,
  );
}

/**
 * Opens this participant's own client-level DP ledger: keyed like the DP-SGD
 * ledger (in a namespace of its own: one participant's whole data is another
 * unit than one example), at the person's δ (default 1e-5), with the person's
 * budget or the default 10.
 */
export async function openClientLevelLedger(
  store: LedgerStore,
  data: Dataset,
  options: Omit<ParticipantLedgerOptions, 'legacyKeys'> = {},
): Promise<ClientLevelLedger> {
  const key = `client-level/${await ledgerKey(data, options.ownData)}`;
  const ledger = await PrivacyLedger.open(
    store,
    key,
    options.maxDelta ?? DEFAULT_MAX_DELTA,
    participantBudget(undefined, options.ownBudget),
    [],
    options.accountant,
  );
  return new ClientLevelLedger(ledger);
}
