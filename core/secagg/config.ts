import { isBytes } from './bytes.ts';
import { SecAggError } from './errors.ts';
import { effectiveDegree, ROUND_SEED_BYTES } from './graph.ts';
import { GCM_IV_BYTES, GCM_TAG_BYTES } from './keys.ts';
import { checkWordBits } from './modulus.ts';
import { maxParticipants, validateQuantization, type QuantizationConfig } from './quantize.ts';
import { SHARE_BYTES } from './shamir.ts';

/** A round's parameters, and the message checks the client and the server share. */

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
  /**
   * b: masked words are in Z_{2^b} and travel packed, b bits each
   * (core/secagg/word-packing.ts). Absent: 32, the original protocol.
   * Compressed update encodings choose the smallest b (core/secagg/modulus.ts).
   */
  readonly wordBits?: number;
  /**
   * True when every input is the participant's update rotated with the
   * round's block Hadamard rotation (signs seeded from `roundSeed`) and
   * zero-padded to `vectorLength`; the coordinator rotates the decoded sum
   * back once (core/privacy/skellam-rotation.ts). Set for int4; absent:
   * unrotated (Skellam rounds rotate either way).
   */
  readonly rotated?: boolean;
  /**
   * k on a cluster (one cohort per node, docs/cluster.md): every participant
   * refuses to reveal shares when fewer than k masked inputs survived,
   * whatever the threshold allows. Absent: the threshold alone.
   */
  readonly minSurvivors?: number;
}

/** The round's word bits: b, or 32 when the config leaves it out. */
export function wordBitsOf(config: Pick<SecAggConfig, 'wordBits'>): number {
  return config.wordBits ?? 32;
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
  if (!Number.isInteger(round) || round < 0 || round > 0xffffffff)
    throw new SecAggError('invalid-config', `round must be a uint32, got ${round}`);
  if (!Number.isInteger(n) || n < 3)
    throw new SecAggError(
      'invalid-config',
      `secure aggregation needs at least 3 participants (a sum of 2 reveals each to the other), got ${n}`,
    );
  const k = effectiveDegree(n, config.neighbours);
  if (!Number.isInteger(t) || 2 * t <= k + 1 || t > k + 1) {
    throw new SecAggError(
      'invalid-config',
      `threshold ${t} must be an integer with ${(k + 1) / 2} < t ≤ ${k + 1} (a strict majority of the k + 1 = ${k + 1} share holders)`,
    );
  }
  if (!isBytes(config.roundSeed, ROUND_SEED_BYTES)) throw new SecAggError('invalid-config', `roundSeed must be ${ROUND_SEED_BYTES} bytes`);
  if (!Number.isInteger(config.vectorLength) || config.vectorLength < 1)
    throw new SecAggError('invalid-config', `vectorLength must be a positive integer, got ${config.vectorLength}`);
  validateQuantization(config.quantization);
  if (config.rotated !== undefined && typeof config.rotated !== 'boolean')
    throw new SecAggError('invalid-config', `rotated must be a boolean, got ${String(config.rotated)}`);
  if (config.minSurvivors !== undefined && !(Number.isInteger(config.minSurvivors) && config.minSurvivors >= 1))
    throw new SecAggError('invalid-config', `minSurvivors must be a positive integer, got ${String(config.minSurvivors)}`);
  const bits = wordBitsOf(config);
  checkWordBits(bits);
  const max = maxParticipants(config.quantization, bits);
  if (n > max)
    throw new SecAggError(
      'invalid-config',
      `${n} participants could overflow the mod-2^${bits} sum with quantizationRange ${config.quantization.quantizationRange}; at most ${max}`,
    );
  return k;
}

// ---------------------------------------------------------------- helpers

export function checkRound(config: SecAggConfig, round: unknown): void {
  if (round !== config.round) throw new SecAggError('wrong-round', `message for round ${String(round)}, this is round ${config.round}`);
}

export function checkIndex(config: SecAggConfig, index: unknown, what: string): number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 1 || index > config.participants) {
    throw new SecAggError('unknown-participant', `${what} ${String(index)} is not a participant index in 1..${config.participants}`);
  }
  return index;
}

export function checkList(value: unknown, what: string): readonly unknown[] {
  if (!Array.isArray(value)) throw new SecAggError('wrong-size', `${what} must be an array`);
  return value;
}

/** A sorted, duplicate-free list of participant indices. */
export function indexSet(config: SecAggConfig, value: unknown, what: string): Set<number> {
  const out = new Set<number>();
  for (const item of checkList(value, what)) {
    const index = checkIndex(config, item, what);
    if (out.has(index)) throw new SecAggError('duplicate', `${what} lists ${index} twice`);
    out.add(index);
  }
  return out;
}

export function sorted(set: Iterable<number>): number[] {
  return [...set].sort((a, b) => a - b);
}
