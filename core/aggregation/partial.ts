/**
 * A partial aggregate: what one node of a cluster sums from its own
 * participants' updates in a round, so the leader can combine the nodes'
 * partials into exactly what one aggregator fed every update would hold.
 * Only rules whose input is a sum have one (FedAvg and what wraps it:
 * FedProx, FedAdam/FedYogi, DP-FedAvg); each node validates, caps, bounds
 * and clips its updates as one coordinator would, and the server step
 * (optimizer moments, DP noise, adaptive clipping) runs once, at the leader.
 */
export interface PartialAggregate {
  /** The running sum the rule keeps (example-weighted for FedAvg, clipped and unweighted for DP-FedAvg). */
  readonly sum: Float64Array;
  /** The total weight of the sum (examples for FedAvg; the count for DP-FedAvg). */
  readonly weight: number;
  /** Updates in the sum. */
  readonly count: number;
  /** DP-FedAvg with central clipping: updates that were within the clip norm (adaptive clipping's count); 0 otherwise. */
  readonly withinClip: number;
}

/** The two methods a round aggregator has when its rule combines from partials. */
export interface PartialMethods {
  /** This aggregator's sum so far (copied), for another node's leader to combine. */
  readonly partial?: () => PartialAggregate;
  /** Adds another node's partial, as if its updates had been added here one by one. */
  readonly addPartial?: (partial: PartialAggregate) => void;
}

/** A wrapper round's partial methods: the wrapped round's, when it has them (like addSum). */
export function innerPartialMethods(inner: PartialMethods): PartialMethods {
  const { partial, addPartial } = inner;
  return {
    partial: partial && (() => partial.call(inner)),
    addPartial: addPartial && ((p: PartialAggregate) => addPartial.call(inner, p)),
  };
}

/** Checks a partial against the model before it is added: a bad one never reaches the sum. */
export function checkPartial(partial: PartialAggregate, length: number): void {
  if (partial.sum.length !== length) throw new RangeError(`partial sum has ${partial.sum.length} values, the model has ${length}`);
  if (!(Number.isInteger(partial.count) && partial.count >= 0))
    throw new RangeError(`partial count must be a non-negative integer, got ${partial.count}`);
  if (!(Number.isInteger(partial.withinClip) && partial.withinClip >= 0 && partial.withinClip <= partial.count))
    throw new RangeError(`partial withinClip must be an integer in [0, count], got ${partial.withinClip}`);
  if (!(Number.isFinite(partial.weight) && partial.weight >= 0))
    throw new RangeError(`partial weight must be finite and non-negative, got ${partial.weight}`);
}

/** "FLPA": the partial aggregate frame's magic. */
const PARTIAL_MAGIC = 0x41504c46;
const PARTIAL_VERSION = 1;
/** magic u32, version u8 + 3 zero bytes, count u32, withinClip u32, length u32, 4 zero bytes, weight f64: 32 bytes, so the sum is 8-aligned. */
export const PARTIAL_HEADER_BYTES = 32;

/** A partial aggregate as bytes (little-endian), as a node writes it to Redis once per round. */
export function encodePartial(partial: PartialAggregate): Uint8Array {
  const bytes = new Uint8Array(PARTIAL_HEADER_BYTES + partial.sum.length * 8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, PARTIAL_MAGIC, true);
  view.setUint8(4, PARTIAL_VERSION);
  view.setUint32(8, partial.count, true);
  view.setUint32(12, partial.withinClip, true);
  view.setUint32(16, partial.sum.length, true);
  view.setFloat64(24, partial.weight, true);
  for (let i = 0; i < partial.sum.length; i++) view.setFloat64(PARTIAL_HEADER_BYTES + i * 8, partial.sum[i]!, true);
  return bytes;
}

/** Reads a partial aggregate frame, refusing one that is not exactly a partial of `expectedLength` values. */
export function decodePartial(bytes: Uint8Array, expectedLength: number): PartialAggregate {
  if (bytes.byteLength < PARTIAL_HEADER_BYTES) throw new RangeError(`partial frame has ${bytes.byteLength} bytes, shorter than its header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== PARTIAL_MAGIC) throw new RangeError('not a partial aggregate frame (bad magic)');
  if (view.getUint8(4) !== PARTIAL_VERSION) throw new RangeError(`partial frame version ${view.getUint8(4)} is not ${PARTIAL_VERSION}`);
  const length = view.getUint32(16, true);
  if (length !== expectedLength) throw new RangeError(`partial sum has ${length} values, the model has ${expectedLength}`);
  if (bytes.byteLength !== PARTIAL_HEADER_BYTES + length * 8)
    throw new RangeError(`partial frame has ${bytes.byteLength} bytes, expected ${PARTIAL_HEADER_BYTES + length * 8}`);
  const sum = new Float64Array(length);
  for (let i = 0; i < length; i++) sum[i] = view.getFloat64(PARTIAL_HEADER_BYTES + i * 8, true);
  const partial = { sum, weight: view.getFloat64(24, true), count: view.getUint32(8, true), withinClip: view.getUint32(12, true) };
  checkPartial(partial, expectedLength);
  return partial;
}
