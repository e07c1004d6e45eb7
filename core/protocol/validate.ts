import type { PackedMaskedInputMessage } from '../secagg/messages.ts';
import type { AdvertiseKeysMessage, ShareKeysMessage, UnmaskResponseMessage } from '../secagg/protocol.ts';
import { ErrorCode, ProtocolError } from './errors.ts';
import { decodeShares, decodeUnmask, toBytes, WireShapeError } from './secagg-wire.ts';
import type {
  Binary,
  ClientInfo,
  DeclineMessage,
  FrozenWeightsRequest,
  JoinRequest,
  ProgressMessage,
  TrainMetrics,
  UpdateMessage,
} from './messages.ts';
import { CONTROL_ACTIONS, SETTINGS_CHANGE_KEYS, type ControlAction, type ControlRequest, type SettingsChange } from './status.ts';

/**
 * Run-time checks of everything a participant sends. TypeScript types stop
 * honest mistakes at compile time; these stop everything else. Each check
 * throws ProtocolError(BAD_PAYLOAD) with the path of the offending field.
 */

type Fields = Record<string, unknown>;

function bad(path: string, expected: string): never {
  throw new ProtocolError(ErrorCode.BadPayload, `${path}: expected ${expected}`);
}

function object(value: unknown, path: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(path, 'an object');
  return value as Fields;
}

function finiteNumber(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) bad(path, 'a finite number');
  return value;
}

function integer(value: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    bad(path, `an integer in [${min}, ${max}]`);
  }
  return value;
}

function shortString(value: unknown, path: string, maxLength = 256): string {
  if (typeof value !== 'string' || value.length > maxLength) bad(path, `a string of at most ${maxLength} characters`);
  return value;
}

function optional<T>(value: unknown, check: (v: unknown) => T): T | undefined {
  return value === undefined ? undefined : check(value);
}

function binary(value: unknown, path: string): Binary {
  if (value instanceof ArrayBuffer || value instanceof Uint8Array) return value;
  return bad(path, 'binary data');
}

/** Largest example count a participant may claim (it weights the average). */
export const MAX_EXAMPLES = 100_000_000;

function clientInfo(value: unknown, path: string): ClientInfo {
  const o = object(value, path);
  return {
    backend: shortString(o.backend, `${path}.backend`, 32),
    adapter: optional(o.adapter, (v) => shortString(v, `${path}.adapter`)),
    threads: optional(o.threads, (v) => integer(v, `${path}.threads`, 1, 1024)),
    numExamples: integer(o.numExamples, `${path}.numExamples`, 1, MAX_EXAMPLES),
    platform: optional(o.platform, (v) => shortString(v, `${path}.platform`)),
  };
}

export function parseJoinRequest(value: unknown): JoinRequest {
  const o = object(value, 'join');
  return {
    protocolVersion: integer(o.protocolVersion, 'join.protocolVersion', 0, 0xffff),
    participantId: optional(o.participantId, (v) => shortString(v, 'join.participantId', 64)),
    rejoinSecret: optional(o.rejoinSecret, (v) => shortString(v, 'join.rejoinSecret', 128)),
    client: clientInfo(o.client, 'join.client'),
  };
}

function trainMetrics(value: unknown, path: string): TrainMetrics {
  const o = object(value, path);
  return { loss: finiteNumber(o.loss, `${path}.loss`), accuracy: finiteNumber(o.accuracy, `${path}.accuracy`) };
}

export function parseUpdateMessage(value: unknown): UpdateMessage {
  const o = object(value, 'update');
  return {
    round: integer(o.round, 'update.round', 1),
    baseVersion: integer(o.baseVersion, 'update.baseVersion', 0),
    numExamples: integer(o.numExamples, 'update.numExamples', 1, MAX_EXAMPLES),
    metrics: optional(o.metrics, (v) => trainMetrics(v, 'update.metrics')),
    trainMs: optional(o.trainMs, (v) => finiteNumber(v, 'update.trainMs')),
    update: binary(o.update, 'update.update'),
    epsilon: optional(o.epsilon, (v) => {
      const epsilon = finiteNumber(v, 'update.epsilon');
      if (epsilon < 0) bad('update.epsilon', 'a number >= 0');
      return epsilon;
    }),
  };
}

export function parseFrozenWeightsRequest(value: unknown): FrozenWeightsRequest {
  const o = object(value, 'model:frozen');
  if (typeof o.hash !== 'string' || !/^[0-9a-f]{64}$/.test(o.hash)) bad('model:frozen.hash', 'a SHA-256 digest as 64 lowercase hex digits');
  return { hash: o.hash };
}

export function parseDeclineMessage(value: unknown): DeclineMessage {
  const o = object(value, 'decline');
  if (typeof o.final !== 'boolean') bad('decline.final', 'a boolean');
  return { round: integer(o.round, 'decline.round', 1), reason: shortString(o.reason, 'decline.reason', 512), final: o.final };
}

export function parseProgressMessage(value: unknown): ProgressMessage {
  const o = object(value, 'progress');
  const fraction = finiteNumber(o.fraction, 'progress.fraction');
  if (fraction < 0 || fraction > 1) bad('progress.fraction', 'a number in [0, 1]');
  return {
    round: integer(o.round, 'progress.round', 1),
    epoch: integer(o.epoch, 'progress.epoch', 0, 10_000),
    epochs: integer(o.epochs, 'progress.epochs', 1, 10_000),
    fraction,
  };
}

// ---------------------------------------------------------------- secure aggregation

/** The shape checks of the secagg messages; core/secagg checks their meaning (sizes, recipients, duplicates). */

/** No round has more participants than this (core/secagg refuses more than maxParticipants anyway). */
const MAX_SECAGG_ENTRIES = 100_000;

function bytes(value: unknown, path: string): Uint8Array {
  return toBytes(binary(value, path));
}

function list(value: unknown, path: string): readonly unknown[] {
  if (!Array.isArray(value) || value.length > MAX_SECAGG_ENTRIES) bad(path, `an array of at most ${MAX_SECAGG_ENTRIES} entries`);
  return value;
}

function secaggHeader(o: Fields, path: string): { round: number; from: number } {
  return { round: integer(o.round, `${path}.round`, 0, 0xffffffff), from: integer(o.from, `${path}.from`, 1, MAX_SECAGG_ENTRIES) };
}

export function parseSecAggAdvertise(value: unknown): AdvertiseKeysMessage {
  const o = object(value, 'secagg:advertise');
  return {
    ...secaggHeader(o, 'secagg:advertise'),
    encryptionKey: bytes(o.encryptionKey, 'secagg:advertise.encryptionKey'),
    maskingKey: bytes(o.maskingKey, 'secagg:advertise.maskingKey'),
  };
}

function indexList(value: unknown, path: string): number[] {
  return list(value, path).map((v, i) => integer(v, `${path}[${i}]`, 0, MAX_SECAGG_ENTRIES));
}

/** Equal pieces of a blob; a blob that does not split is a wrong size. */
function pieces<T>(decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    if (error instanceof WireShapeError) throw new ProtocolError(ErrorCode.BadPayload, error.message);
    throw error;
  }
}

export function parseSecAggShares(value: unknown): ShareKeysMessage {
  const o = object(value, 'secagg:shares');
  const w = {
    ...secaggHeader(o, 'secagg:shares'),
    to: indexList(o.to, 'secagg:shares.to'),
    ciphertexts: bytes(o.ciphertexts, 'secagg:shares.ciphertexts'),
  };
  return pieces(() => decodeShares(w));
}

/**
 * The masked vector's packed bytes, copied: only the round knows its word
 * bits, so core/secagg unpacks them (and refuses a wrong length or non-zero
 * padding) when the message reaches the round.
 */
export function parseSecAggMasked(value: unknown): PackedMaskedInputMessage {
  const o = object(value, 'secagg:masked');
  const packed = bytes(o.masked, 'secagg:masked.masked').slice();
  return { ...secaggHeader(o, 'secagg:masked'), packed };
}

export function parseSecAggUnmask(value: unknown): UnmaskResponseMessage {
  const o = object(value, 'secagg:unmask');
  const w = {
    ...secaggHeader(o, 'secagg:unmask'),
    selfMaskOwners: indexList(o.selfMaskOwners, 'secagg:unmask.selfMaskOwners'),
    selfMaskShares: bytes(o.selfMaskShares, 'secagg:unmask.selfMaskShares'),
    maskingKeyOwners: indexList(o.maskingKeyOwners, 'secagg:unmask.maskingKeyOwners'),
    maskingKeyShares: bytes(o.maskingKeyShares, 'secagg:unmask.maskingKeyShares'),
  };
  return pieces(() => decodeUnmask(w));
}

// ---------------------------------------------------------------- admin (the dashboard is a client too)

export function parseControlRequest(value: unknown): ControlRequest {
  const o = object(value, 'control');
  for (const key of Object.keys(o)) if (key !== 'action') bad(`control.${key.slice(0, 64)}`, 'no such field (only "action")');
  if (typeof o.action !== 'string' || !(CONTROL_ACTIONS as readonly string[]).includes(o.action))
    bad('control.action', `one of ${CONTROL_ACTIONS.join(', ')}`);
  return { action: o.action as ControlAction };
}

/**
 * The shape of a settings change: known keys, finite numbers, at least one.
 * Ranges and what a change may not break are the engine's checks
 * (INVALID_SETTING), where the federation's configuration is known.
 */
export function parseSettingsChange(value: unknown): SettingsChange {
  const o = object(value, 'settings');
  const keys = Object.keys(o);
  for (const key of keys) {
    if (!(SETTINGS_CHANGE_KEYS as readonly string[]).includes(key))
      bad(`settings.${key.slice(0, 64)}`, `no such setting (one of ${SETTINGS_CHANGE_KEYS.join(', ')})`);
  }
  if (keys.length === 0) bad('settings', `at least one of ${SETTINGS_CHANGE_KEYS.join(', ')}`);
  const out: { -readonly [K in keyof SettingsChange]: SettingsChange[K] } = {};
  for (const key of SETTINGS_CHANGE_KEYS) {
    if (o[key] !== undefined) out[key] = finiteNumber(o[key], `settings.${key}`);
  }
  return out;
}
